#ifndef TB_AGENT_COPENSSL_SHIM_H
#define TB_AGENT_COPENSSL_SHIM_H
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/bio.h>

/* SSL_set_tlsext_host_name is a macro, which Swift cannot call. */
static inline int tb_ssl_set_sni(SSL *ssl, const char *name) { return (int)SSL_set_tlsext_host_name(ssl, name); }

/* The STACK_OF(X509) accessors are macro-generated; these give Swift plain functions. */
static inline int tb_sk_x509_num(const STACK_OF(X509) *stack) { return stack == NULL ? 0 : sk_X509_num(stack); }
static inline X509 *tb_sk_x509_value(const STACK_OF(X509) *stack, int index) { return sk_X509_value(stack, index); }
static inline STACK_OF(X509) *tb_sk_x509_new(void) { return sk_X509_new_null(); }
static inline int tb_sk_x509_push(STACK_OF(X509) *stack, X509 *cert) { return sk_X509_push(stack, cert); }
static inline void tb_sk_x509_free(STACK_OF(X509) *stack) { sk_X509_free(stack); }
/* BIO_pending is a macro. */
static inline long tb_bio_pending(BIO *bio) { return (long)BIO_pending(bio); }
#endif
