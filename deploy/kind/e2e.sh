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
# Not ready before a repository exists (/readyz needs a successful reconcile): wait for Running only.
kubectl -n "$NS" wait --for=jsonpath='{.status.phase}'=Running pod -l app.kubernetes.io/name=partnerctl --timeout=300s

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
phase=""
for attempt in $(seq 1 60); do
  phase=$(kubectl -n "$NS" get partnerintegration ministry-social-affairs.northbridge-bank \
    -o jsonpath='{.status.phase}' 2>/dev/null || true)
  [ "$phase" = AWAITING_HANDSHAKE ] && break
  sleep 3
done
[ "$phase" = AWAITING_HANDSHAKE ] || { kubectl -n "$NS" logs deployment/partnerctl -c reconciler --tail=50; exit 1; }
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
for attempt in $(seq 1 30); do   # the handshake makes the partner ACTIVE
  phase=$(kubectl -n "$NS" get partnerintegration ministry-social-affairs.northbridge-bank -o jsonpath='{.status.phase}')
  [ "$phase" = ACTIVE ] && break
  sleep 2
done
[ "$phase" = ACTIVE ]
kubectl -n "$NS" get partnerintegrations
kubectl -n "$NS" get events --field-selector involvedObject.kind=PartnerIntegration
echo "kind end-to-end onboarding: ok"
