import authsvc


def test_public_surface_is_curated() -> None:
    assert sorted(authsvc.__all__) == sorted(
        [
            "AuthsvcError",
            "ConfigError",
            "Decision",
            "KeyRecord",
            "KeyRing",
            "KeySourceError",
            "KeyStore",
            "Policy",
            "Reason",
            "RequestView",
            "__version__",
            "decide",
        ]
    )
    for name in authsvc.__all__:
        assert hasattr(authsvc, name)
    assert issubclass(authsvc.ConfigError, authsvc.AuthsvcError)
    assert issubclass(authsvc.KeySourceError, authsvc.AuthsvcError)
