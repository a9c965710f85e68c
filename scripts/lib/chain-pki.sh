#!/bin/sh
# A throw-away PKI for X.509 chain provisioning tests (Tests/AgentTestSupport/ChainPKI.swift and
# Tests/conformance/test_x509_chain.py), made by openssl in DIR:
#   root.crt -> intermediate.crt -> leaf.crt (CN LEAF_CN, key leaf.key); chain.pem = leaf + intermediate;
#   full-chain.pem = leaf + intermediate + root; other-leaf.crt (CN OTHER_CN), other-chain.pem;
#   stranger-ca.crt -> stranger.crt (CN STRANGER_CN), stranger-chain.pem: a CA no profile holds;
#   expired-leaf.crt, expired-chain.pem: leaf.key's certificate, expired in 2020; wrong.key: a key of nothing here;
#   server.crt/server.key: a TLS server certificate for 127.0.0.1 signed by root.crt. Every key is mode 0600.
# Usage: chain-pki.sh DIR LEAF_CN OTHER_CN STRANGER_CN
set -e
cd "$1"
leaf_cn=$2 other_cn=$3 stranger_cn=$4
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; }
ca() {  # name CN: a self-signed CA
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
signed() {  # name CN issuer [extfile]
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
    openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -out "$1.crt" -days 2 \
        ${4:+-extfile "$4"} 2>/dev/null
}
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
printf 'subjectAltName=IP:127.0.0.1\n' > server.ext
ca root "tb-agent test root"
signed intermediate "tb-agent test intermediate" root ca.ext
signed leaf "$leaf_cn" intermediate
cat leaf.crt intermediate.crt > chain.pem
cat leaf.crt intermediate.crt root.crt > full-chain.pem
signed other-leaf "$other_cn" intermediate
cat other-leaf.crt intermediate.crt > other-chain.pem
ca stranger-ca "unknown CA"
signed stranger "$stranger_cn" stranger-ca
cat stranger.crt stranger-ca.crt > stranger-chain.pem
# leaf.key's certificate, expired in 2020 (openssl ca sets the dates).
printf '[ca]\ndefault_ca=d\n[d]\ndir=.\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' > ca.cnf
touch index.txt
echo 1000 > serial
openssl req -new -key leaf.key -out expired.csr -subj "/CN=$leaf_cn"
openssl ca -batch -config ca.cnf -cert intermediate.crt -keyfile intermediate.key -in expired.csr \
    -out expired-leaf.crt -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
cat expired-leaf.crt intermediate.crt > expired-chain.pem
key wrong.key
signed server 127.0.0.1 root server.ext
chmod 600 ./*.key
