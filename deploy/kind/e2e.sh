#!/usr/bin/env bash
# End-to-end onboarding on a kind cluster (run by the `kind` job of .github/workflows/ci.yml):
# build the image, apply deploy/kind, hand the reconciler a partner repository, and check that the
# partner becomes a PartnerIntegration, that exactly one replica holds the Lease, and that the
# delivered credentials get a token at the gateway and pass the /v1/ping handshake.
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=scp
CLUSTER=${KIND_CLUSTER:-kind}

docker build -t partnerctl:ci .
kind load docker-image partnerctl:ci --name "$CLUSTER"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create configmap partnerctl-trust-root --from-file=trust-root.yaml=examples/trust-root.yaml \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k deploy/kind
kubectl wait --for=condition=Established crd/partnerintegrations.partners.scp.dev --timeout=60s
kubectl -n "$NS" rollout status deployment/partnerctl --timeout=180s || true   # not ready before a repository exists

# A partner repository on the shared volume: this repository's policies and one partner.
work=$(mktemp -d)
git init -q -b main "$work/partners"
cp -r policies partners "$work/partners/"
git -C "$work/partners" -c user.name=ci -c user.email=ci@example add -A
git -C "$work/partners" -c user.name=ci -c user.email=ci@example commit -qm "Partners for the kind end-to-end test"
git clone -q --bare "$work/partners" "$work/partners.git"
pod=$(kubectl -n "$NS" get pods -l app.kubernetes.io/name=partnerctl -o jsonpath='{.items[0].metadata.name}')
tar -C "$work" -cf - partners.git | kubectl -n "$NS" exec -i "$pod" -c reconciler -- tar -C /var/lib/partnerctl -xf -

kubectl -n "$NS" rollout status deployment/partnerctl --timeout=300s
kubectl -n "$NS" wait --for=jsonpath='{.status.phase}'=AWAITING_HANDSHAKE \
  partnerintegration/ministry-social-affairs.northbridge-bank --timeout=180s
kubectl -n "$NS" get partnerintegrations

holder=$(kubectl -n "$NS" get lease partnerctl-leader -o jsonpath='{.spec.holderIdentity}')
echo "leader: $holder"
kubectl -n "$NS" get pods -o name | grep -q "$holder"

credentials=$(kubectl -n "$NS" exec "$holder" -c reconciler -- partnerctl -o json credentials deliver \
  ministry-social-affairs/northbridge-bank)
client_id=$(echo "$credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
client_secret=$(echo "$credentials" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
kubectl -n "$NS" port-forward service/partnerctl-gateway 18080:80 >/dev/null 2>&1 &
forward=$!
trap 'kill $forward' EXIT
sleep 3
token=$(curl -fsS -u "$client_id:$client_secret" -d grant_type=client_credentials http://127.0.0.1:18080/oauth2/token \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
curl -fsS -H "Authorization: Bearer $token" http://127.0.0.1:18080/v1/ping
kubectl -n "$NS" get events --field-selector involvedObject.kind=PartnerIntegration
echo "kind end-to-end onboarding: ok"
