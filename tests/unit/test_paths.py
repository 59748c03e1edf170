import pytest

from authsvc.authz import is_canonical, normalize_path, query_values, split_target


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/health", "/health"),
        ("/health/", "/health/"),
        ("//health//liveliness", "/health/liveliness"),
        ("/health/./liveliness", "/health/liveliness"),
        ("/health/liveliness/../../v1/models", "/v1/models"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/health%2Fliveliness", "/health/liveliness"),
        ("/health%2fliveliness", "/health/liveliness"),
        ("/health%5Cliveliness", "/health/liveliness"),
        ("/health\\liveliness", "/health/liveliness"),
        ("/%2e%2e/v1/models", "/v1/models"),
        ("/a/..", "/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/..", "/a/"),  # a trailing dot segment keeps the trailing slash
        ("/a/b/%2e%2e", "/a/"),
        ("/a b", "/a b"),  # a space is not a control character
        ("/a%20b", "/a b"),
        ("/\x1f", None),  # the last C0 control
        ("/a\x7f", None),  # DEL
        ("/a%7F", None),
        ("/a\x80", "/a\x80"),  # not a control character here (the credential rules differ)
        ("/v1/%00", None),
        ("/v1/%ff", None),
        ("*", None),
        ("http://evil/health", None),
        ("", None),
    ],
)
def test_normalize_path(raw: str, expected: str | None) -> None:
    assert normalize_path(raw) == expected


def test_canonical() -> None:
    assert is_canonical("/health/liveliness")
    assert not is_canonical("/health//liveliness")
    assert not is_canonical("/health/liveliness/.")
    assert not is_canonical("/HEALTH%2fx")


def test_split_target() -> None:
    assert split_target("/a?b=1&c") == ("/a", "b=1&c")
    assert split_target("/a?") == ("/a", "")
    assert split_target("/a") == ("/a", "")
    assert split_target("/a#frag?x") == ("/a#frag", "x")


def test_query_values() -> None:
    assert query_values("key=abc&x=1&key=d%2Fe", "key") == ["abc", "d/e"]
    assert query_values("keys=1&akey=2", "key") == []
    assert query_values("key", "key") == [""]
    assert query_values("a+b=1&key=x+y", "key") == ["x+y"]
    assert query_values("", "key") == []
