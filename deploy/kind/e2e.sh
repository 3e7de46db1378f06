#!/usr/bin/env bash
# End-to-end onboarding on a kind cluster (run by the `kind` job of .github/workflows/ci.yml):
# build the image, start PostgreSQL and a Vault dev server in the namespace, apply deploy/kind (the
# base layout: two leader-elected reconcilers, dispatcher workers, three gateways; no volume shared),
# and check that the partner becomes a PartnerIntegration (the PostgreSQL state's mirror), that
# exactly one reconciler leads, and that the delivered credentials get a token at the gateway and
# pass the /v1/ping handshake.
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=scp
CLUSTER=${KIND_CLUSTER:-kind}
k() { kubectl -n "$NS" "$@"; }
secret() { openssl rand -hex 24; }

docker build -t partnerctl:ci .
kind load docker-image partnerctl:ci --name "$CLUSTER"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
work=$(mktemp -d)

# What deploy/ expects to be created out of band (deploy/base/config.yaml): the trust root, and the
# database URL (no password in it) with the password beside it. Here also the test's Vault: its
# root token and a certificate for vault.scp.svc from a CA of the test's own.
k create configmap partnerctl-trust-root --from-file=trust-root.yaml=examples/trust-root.yaml \
  --dry-run=client -o yaml | kubectl apply -f -
k create secret generic partnerctl-postgresql \
  --from-literal=url="postgresql://partnerctl@postgresql.$NS.svc:5432/partnerctl?sslmode=disable" \
  --from-literal=password="$(secret)" --dry-run=client -o yaml | kubectl apply -f -
k create secret generic vault-dev-token --from-literal=token="$(secret)" --dry-run=client -o yaml | kubectl apply -f -
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=partnerctl kind test CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=vault.$NS.svc" -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:vault.%s.svc,DNS:vault.%s.svc.cluster.local\nextendedKeyUsage=serverAuth\n' "$NS" "$NS" \
  > "$work/tls.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/tls.ext" -out "$work/tls.crt" 2>/dev/null
k create secret tls vault-tls --cert="$work/tls.crt" --key="$work/tls.key" --dry-run=client -o yaml | kubectl apply -f -
k create configmap partnerctl-ca --from-file=vault-ca.crt="$work/ca.crt" --dry-run=client -o yaml | kubectl apply -f -

# The partner repository: this repository's policies and partners, as a git bundle that each
# reconciler clones into its scratch folder (an initContainer of deploy/kind).
git init -q -b main "$work/partners"
cp -r policies partners "$work/partners/"
git -C "$work/partners" -c user.name=ci -c user.email=ci@example add -A
git -C "$work/partners" -c user.name=ci -c user.email=ci@example commit -qm "Partners for the kind end-to-end test"
git -C "$work/partners" bundle create "$work/partners.bundle" HEAD main
k create configmap partners-bundle --from-file=partners.bundle="$work/partners.bundle" \
  --dry-run=client -o yaml | kubectl apply -f -

# PostgreSQL and Vault first, so partnerctl's pods find them on their first start.
kubectl apply -k deploy/kind -l 'app.kubernetes.io/name in (postgresql,vault)'
k rollout status deployment/postgresql --timeout=180s
k rollout status deployment/vault --timeout=180s
vault() { k exec -i deployment/vault -- vault "$@"; }
vault secrets enable transit
vault write -f transit/keys/scp-partners
vault policy write partnerctl - < deploy/vault/partnerctl-policy.hcl
vault policy write partnerctl-gateway - < deploy/vault/partnerctl-gateway-policy.hcl
vault policy write partnerctl-console - < deploy/vault/partnerctl-console-policy.hcl
vault auth enable kubernetes
vault write auth/kubernetes/config kubernetes_host=https://kubernetes.default.svc
# A Vault role per ServiceAccount of deploy/base/rbac.yaml: the reconciler and the dispatcher, the gateway, the console.
vault write auth/kubernetes/role/partnerctl bound_service_account_names=partnerctl \
  bound_service_account_namespaces="$NS" token_policies=partnerctl token_ttl=1h
vault write auth/kubernetes/role/partnerctl-gateway bound_service_account_names=partnerctl-gateway \
  bound_service_account_namespaces="$NS" token_policies=partnerctl-gateway token_ttl=1h
vault write auth/kubernetes/role/partnerctl-console bound_service_account_names=partnerctl-console \
  bound_service_account_namespaces="$NS" token_policies=partnerctl-console token_ttl=1h

kubectl apply -k deploy/kind
kubectl wait --for=condition=Established crd/partnerintegrations.partners.scp.dev --timeout=60s
for deployment in partnerctl-reconciler partnerctl-dispatcher partnerctl-gateway; do
  k rollout status "deployment/$deployment" --timeout=300s
done
ready=0
for _ in $(seq 1 60); do   # the autoscaler's minimum (the Deployment sets no count of its own)
  ready=$(k get deployment partnerctl-gateway -o jsonpath='{.status.readyReplicas}')
  [ "${ready:-0}" -ge 3 ] && break
  sleep 3
done
[ "${ready:-0}" -ge 3 ] || { k describe hpa partnerctl-gateway; exit 1; }
k get pvc -o name | grep . && { echo "deploy/kind created a PersistentVolumeClaim"; exit 1; }

phase=""
for _ in $(seq 1 60); do
  phase=$(k get partnerintegration ministry-social-affairs.northbridge-bank -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = AWAITING_HANDSHAKE ] && break
  sleep 3
done
[ "$phase" = AWAITING_HANDSHAKE ] || { k logs deployment/partnerctl-reconciler -c reconciler --tail=50; exit 1; }
k get partnerintegrations

# Exactly one reconciler took the lead (the PostgreSQL advisory lock); the other stands by, ready.
leaders=()
for pod in $(k get pods -l app.kubernetes.io/component=reconciler -o name); do
  if k logs "$pod" -c reconciler | grep -q "acquired the lease as"; then leaders+=("$pod"); fi
done
echo "leader: ${leaders[*]}"
[ "${#leaders[@]}" -eq 1 ]

# Delivery is response wrapping in Vault: any reconciler pod delivers, the Tech Lead unwraps once.
wrapped=$(k exec deployment/partnerctl-reconciler -c reconciler -- partnerctl -o json credentials deliver \
  ministry-social-affairs/northbridge-bank)
credentials=$(echo "$wrapped" | python3 -c 'import json,sys; print(json.load(sys.stdin)["wrap_token"])' \
  | k exec -i deployment/partnerctl-reconciler -c reconciler -- partnerctl -o json credentials unwrap -)
client_id=$(echo "$credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
client_secret=$(echo "$credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
k port-forward service/partnerctl-gateway 18080:80 >/dev/null 2>&1 &
forward=$!
trap 'kill $forward' EXIT
sleep 3
token=$(curl -fsS -u "$client_id:$client_secret" -d grant_type=client_credentials http://127.0.0.1:18080/oauth2/token \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:18080/v1/ping
for _ in $(seq 1 30); do   # the handshake (recorded by a gateway) makes the partner ACTIVE
  phase=$(k get partnerintegration ministry-social-affairs.northbridge-bank -o jsonpath='{.status.phase}')
  [ "$phase" = ACTIVE ] && break
  sleep 2
done
[ "$phase" = ACTIVE ]
k get partnerintegrations
k get events --field-selector involvedObject.kind=PartnerIntegration
echo "kind end-to-end onboarding: ok"
