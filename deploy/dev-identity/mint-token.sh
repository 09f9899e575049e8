#!/bin/sh
# Mints a bearer token for the docker-compose deployment, signed with its DEVELOPMENT key
# (private.pem, in the repository: anyone can mint with it, so it is trusted nowhere else).
#   deploy/dev-identity/mint-token.sh [ACCOUNT_ID] [PRINCIPAL] > token
# Needs openssl 3. The token never expires (exp: 2100-01-01).
set -eu
account=${1:-1234567890123456}
principal=${2:-developer}
here=$(dirname "$0")
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
header=$(printf '%s' '{"alg":"EdDSA","typ":"JWT"}' | b64url)
claims=$(printf '{"iss":"contactd-dev","aud":"contactd","sub":"%s","account_id":"%s","exp":4102444800}' \
    "$principal" "$account" | b64url)
input=$(mktemp)
trap 'rm -f "$input"' EXIT
printf '%s.%s' "$header" "$claims" > "$input"
signature=$(openssl pkeyutl -sign -rawin -inkey "$here/private.pem" -in "$input" | b64url)
printf '%s.%s.%s\n' "$header" "$claims" "$signature"
