"""Writes a decentralised-authentication setup for a test nats-server: an operator, an account
and a user, as NATS JWTs (v2, ed25519-nkey) signed with fresh NKeys, plus the user's .creds file.

    make-nats-jwt.py DIR     prints the server configuration lines (operator, MEMORY resolver)

Runs in the oracle environment, which has the nkeys library."""
import base64
import hashlib
import json
import os
import sys
import time

import nkeys


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keypair(prefix):
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(seed)
    return seed, pair, pair.public_key.decode()


def jwt(claims, signer):
    header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    # A unique id derived from the claims.
    claims = dict(claims, jti="")
    claims["jti"] = base64.b32encode(hashlib.sha512(json.dumps(claims).encode()).digest()[:32]).decode().rstrip("=")
    body = b64(json.dumps(claims).encode())
    signature = signer.sign(f"{header}.{body}".encode())
    return f"{header}.{body}.{b64(signature)}"


def main(directory):
    now = int(time.time())
    _, operator, operator_public = keypair(nkeys.PREFIX_BYTE_OPERATOR)
    _, account, account_public = keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    user_seed, _, user_public = keypair(nkeys.PREFIX_BYTE_USER)
    operator_jwt = jwt({"iat": now, "iss": operator_public, "name": "infra-test", "sub": operator_public,
                        "nats": {"type": "operator", "version": 2}}, operator)
    unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                 "conn": -1, "leaf": -1}
    account_jwt = jwt({"iat": now, "iss": operator_public, "name": "infra", "sub": account_public,
                       "nats": {"limits": unlimited, "default_permissions": {"pub": {}, "sub": {}},
                                "type": "account", "version": 2}}, operator)
    user_jwt = jwt({"iat": now, "iss": account_public, "name": "infra-user", "sub": user_public,
                    "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
                             "type": "user", "version": 2}}, account)
    creds = (
        "-----BEGIN NATS USER JWT-----\n" + user_jwt + "\n------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n\n"
        "-----BEGIN USER NKEY SEED-----\n" + user_seed.decode() + "\n------END USER NKEY SEED------\n"
    )
    path = os.path.join(directory, "user.creds")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write(creds)
    print(f'operator: "{operator_jwt}"')
    print("resolver: MEMORY")
    print(f'resolver_preload: {{ {account_public}: "{account_jwt}" }}')


if __name__ == "__main__":
    main(sys.argv[1])
