#!/bin/sh
# Make the webhook's serving certificate and the caBundle the API server needs to trust it.
#
#   k8s/webhook/make-certs.sh OUTDIR [SERVICE] [NAMESPACE] [DAYS]
#
# Writes to OUTDIR (created, mode 0700):
#   ca.crt ca.key            a private CA (P-256, 10 years) used only for this webhook
#   tls.crt tls.key          the serving certificate, signed by that CA; SANs:
#                            SERVICE, SERVICE.NAMESPACE, SERVICE.NAMESPACE.svc,
#                            SERVICE.NAMESPACE.svc.cluster.local
#   ca-bundle.patch.json     JSON patch setting caBundle on both webhooks of authsvc-injector
#
# Then (docs/kubernetes.md):
#   kubectl -n NAMESPACE create secret tls authsvc-webhook-tls --cert=OUTDIR/tls.crt --key=OUTDIR/tls.key
#   kubectl patch mutatingwebhookconfiguration authsvc-injector --type=json --patch-file OUTDIR/ca-bundle.patch.json
# Keep ca.key offline (or delete it and re-run the script to rotate everything).
set -eu

out=${1:?usage: make-certs.sh OUTDIR [SERVICE] [NAMESPACE] [DAYS]}
svc=${2:-authsvc-webhook}
ns=${3:-authsvc-system}
days=${4:-365}

umask 077
mkdir -p "$out"
cd "$out"

cat > server.ext <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$svc, DNS:$svc.$ns, DNS:$svc.$ns.svc, DNS:$svc.$ns.svc.cluster.local
EXT

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout ca.key -out ca.crt -days 3650 -subj "/CN=authsvc-webhook-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
  -keyout tls.key -out tls.csr -subj "/CN=$svc.$ns.svc" 2>/dev/null
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -days "$days" -sha256 -extfile server.ext -out tls.crt 2>/dev/null
rm -f tls.csr server.ext ca.srl

bundle=$(openssl base64 -A -in ca.crt)
cat > ca-bundle.patch.json <<JSON
[
  {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "$bundle"},
  {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": "$bundle"}
]
JSON
chmod 0644 ca.crt tls.crt ca-bundle.patch.json
echo "wrote $out/{ca.crt,ca.key,tls.crt,tls.key,ca-bundle.patch.json} for $svc.$ns.svc"
