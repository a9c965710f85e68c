#ifndef TB_AGENT_COPENSSL_SHIM_H
#define TB_AGENT_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/err.h>

/* SSL_set_tlsext_host_name is a macro, which Swift cannot call. */
static inline int tb_ssl_set_sni(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }
#endif
