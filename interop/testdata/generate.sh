#!/bin/sh
# Regenerates the test credentials in this directory with openssl, following the
# commands of grpc/grpc src/core/tsi/test_creds/README (same subjects, same SANs on
# server1). TEST ONLY: the private keys are public.
set -eu
cd "$(dirname "$0")"
days=3650
cat > ca.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
C = AU
ST = Some-State
O = Internet Widgits Pty Ltd
CN = testca
[v3_req]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CNF
cat > server1.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
C = US
ST = Illinois
L = Chicago
O = Example, Co.
CN = *.test.google.com
[req_ext]
basicConstraints = CA:false
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:*.test.google.fr, DNS:waterzooi.test.google.be, DNS:*.test.youtube.com, IP:192.168.1.3
CNF
cat > client.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
C = AU
ST = Some-State
O = Internet Widgits Pty Ltd
CN = testclient
[req_ext]
basicConstraints = CA:false
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
CNF
openssl req -x509 -new -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem \
  -config ca.cnf -extensions v3_req -days $days
for name in server1 client; do
  openssl genrsa -out $name.key.rsa 2048
  openssl pkcs8 -topk8 -in $name.key.rsa -out $name.key -nocrypt
  openssl req -new -key $name.key -out $name.csr -config $name.cnf
  openssl x509 -req -CA ca.pem -CAkey ca.key -CAcreateserial -in $name.csr \
    -out $name.pem -extensions req_ext -extfile $name.cnf -days $days
done
rm -f ./*.rsa ./*.csr ./*.srl ./*.cnf ca.key
