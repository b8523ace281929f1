#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <openssl/objects.h>

/* Function forms of OpenSSL macros, which the Swift importer cannot see. */

static inline long copenssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_set_tlsext_host_name(ssl, name);
}

static inline int copenssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline long copenssl_set_partial_write(SSL *ssl) {
    return SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

static inline void copenssl_bio_set_mem_eof_return(BIO *bio, int value) {
    BIO_set_mem_eof_return(bio, value);
}

static inline int copenssl_tls1_2_version(void) { return TLS1_2_VERSION; }

static inline int copenssl_ssl_error_want_read(void) { return SSL_ERROR_WANT_READ; }
static inline int copenssl_ssl_error_want_write(void) { return SSL_ERROR_WANT_WRITE; }
static inline int copenssl_ssl_error_zero_return(void) { return SSL_ERROR_ZERO_RETURN; }
static inline int copenssl_ssl_error_syscall(void) { return SSL_ERROR_SYSCALL; }
static inline int copenssl_ssl_error_ssl(void) { return SSL_ERROR_SSL; }

#endif
