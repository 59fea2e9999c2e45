#!/usr/bin/env bash
# The TTC integration guide's three steps, as curl commands with the guide's
# own JSON bodies, run against the sandbox (never the real hosts).
#
#   scripts/seed-flow.sh            starts cmd/sandbox itself, runs the flow, stops it
#   SANDBOX_TTC_URL=... SANDBOX_CYBS_URL=... SANDBOX_CA_FILE=... SANDBOX_API_KEY_COSTCO=... scripts/seed-flow.sh
#                                   runs the flow against a sandbox that is already up
#
# It prints one line per step ("token: 200", "payment: 201", "callback: 200")
# and exits non-zero if any step got another status.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
sandbox_pid=""
cleanup() {
  [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null || true
  rm -rf "$work"   # the client certificate and key never outlive the flow
}
trap cleanup EXIT

if [ -z "${SANDBOX_TTC_URL:-}" ]; then
  go build -o "$work/sandbox" ./cmd/sandbox
  "$work/sandbox" -ttc-addr 127.0.0.1:0 -cybs-addr 127.0.0.1:0 -ca-out "$work/ca.pem" >"$work/env" &
  sandbox_pid=$!
  for _ in $(seq 100); do grep -q SANDBOX_API_KEY "$work/env" 2>/dev/null && break; sleep 0.1; done
  # shellcheck disable=SC1091
  . "$work/env"
fi
api_key=${SANDBOX_API_KEY_COSTCO:?no API key for integrator costco}

# Step 1: request an access token (the guide's body).
token_status=$(curl -sS -o "$work/token.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' \
  -H "x-api-key: $api_key" \
  -d '{
  "merchantId": "ttc_ttusas_m"
}' \
  "$SANDBOX_TTC_URL/cybersource/token/costco")
echo "token: $token_status"
[ "$token_status" = 200 ] || { cat "$work/token.json"; exit 1; }

field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$work/token.json"; }
access_token=$(field access_token)
printf '%b' "$(field mTls_cert)" >"$work/client.crt"
printf '%b' "$(field mTls_key)" >"$work/client.key"
chmod 600 "$work/client.key"

# Step 2: submit the payment with mTLS (the guide's body).
pay_status=$(curl -sS -o "$work/payment.json" -w '%{http_code}' -X POST \
  --cacert "$SANDBOX_CA_FILE" \
  --cert "$work/client.crt" \
  --key "$work/client.key" \
  -H "Authorization: Bearer $access_token" \
  -H "Content-Type: application/json" \
  -d '{
    "clientReferenceInformation": {
      "code": "TTUSAS_123456",
      "partner": {
        "solutionId": "ttctestpartner"
      }
    },
    "processingInformation": {
      "capture": true,
      "actionList": [
        "TOKEN_CREATE"
      ]
    },
    "paymentInformation": {
      "card": {
        "number": "4111111111111111",
        "expirationMonth": "12",
        "expirationYear": "2031"
      }
    },
    "orderInformation": {
      "amountDetails": {
        "totalAmount": "102.21",
        "currency": "USD"
      },
      "billTo": {
        "firstName": "John",
        "lastName": "Doe",
        "address1": "1 Market St",
        "locality": "san francisco",
        "administrativeArea": "CA",
        "postalCode": "94105",
        "country": "US",
        "email": "test@cybs.com",
        "phoneNumber": "4158880000"
      }
    }
  }' \
  "$SANDBOX_CYBS_URL/pts/v2/payments")
echo "payment: $pay_status"
[ "$pay_status" = 201 ] || { cat "$work/payment.json"; exit 1; }
# The top-level "id" is the 22-digit CyberSource request id.
payment_id=$(grep -o '"id":"[0-9]\{22\}"' "$work/payment.json" | head -1 | cut -d'"' -f4)
echo "payment id: $payment_id"

# Step 3: tell TTC (the guide's example payload, with the real id).
cb_status=$(curl -sS -o "$work/callback.json" -w '%{http_code}' -X POST \
  -H 'Content-Type: application/json' \
  -H "x-api-key: $api_key" \
  -d "{
  \"merchantId\": \"ttc_ttusas_m\",
  \"transactionId\": \"$payment_id\",
  \"bookingId\": \"C253535\",
  \"currency\": \"USD\",
  \"amount\": \"102.21\"
}" \
  "$SANDBOX_TTC_URL/cybersource/oauth/callback")
echo "callback: $cb_status"
[ "$cb_status" = 200 ] || { cat "$work/callback.json"; exit 1; }
