/* ticket.c - session ticket keys derived per rotation period, sealed with
 * ChaCha20-Poly1305. */
#include "tls/ticket.h"

#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/hmac.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#define TICKET_MAGIC "rgT1"

/* Written once at start-up (tls_ticket_init), read by every thread. The
 * generation makes per-thread caches drop keys of an older master. */
static uint8_t ticket_master[32];
static uint8_t ticket_id[4]; /* tells this process's tickets apart */
static unsigned ticket_period_s = TLS_TICKET_PERIOD_S;
static atomic_uint ticket_gen;
static time_t (*ticket_clock)(void);

struct ticket_key {
	unsigned gen; /* 0: empty */
	uint64_t epoch;
	uint8_t key[CHACHA20_POLY1305_AEAD_KEYSIZE];
};

static __thread struct ticket_key ticket_cache[2];

static int fill_random(void *p, size_t len)
{
	uint8_t *b = p;

	while (len) {
		ssize_t n = getrandom(b, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

int tls_ticket_init(unsigned period_s)
{
	int r = fill_random(ticket_master, sizeof(ticket_master));

	if (r)
		return r;
	r = fill_random(ticket_id, sizeof(ticket_id));
	if (r)
		return r;
	ticket_period_s = period_s ? period_s : TLS_TICKET_PERIOD_S;
	atomic_fetch_add(&ticket_gen, 1);
	return 0;
}

unsigned tls_ticket_period(void)
{
	return ticket_period_s;
}

void tls_ticket_set_clock(time_t (*now)(void))
{
	ticket_clock = now;
}

static uint64_t ticket_epoch(void)
{
	time_t t = ticket_clock ? ticket_clock() : time(NULL);

	return (uint64_t)t / ticket_period_s;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The key of epoch, from the per-thread cache or derived. NULL on error. */
static const uint8_t *ticket_key(uint64_t epoch)
{
	unsigned gen = atomic_load_explicit(&ticket_gen, memory_order_acquire);
	struct ticket_key *k = &ticket_cache[epoch & 1];
	static const char label[] = "ringress ticket key";
	uint8_t e[8], mac[WC_SHA256_DIGEST_SIZE];
	Hmac h;

	if (k->gen == gen && k->epoch == epoch)
		return k->key;
	put_be64(e, epoch);
	if (wc_HmacInit(&h, NULL, INVALID_DEVID))
		return NULL;
	if (wc_HmacSetKey(&h, WC_SHA256, ticket_master, sizeof(ticket_master)) ||
	    wc_HmacUpdate(&h, (const byte *)label, sizeof(label) - 1) ||
	    wc_HmacUpdate(&h, e, sizeof(e)) || wc_HmacFinal(&h, mac)) {
		wc_HmacFree(&h);
		return NULL;
	}
	wc_HmacFree(&h);
	memcpy(k->key, mac, sizeof(k->key));
	k->epoch = epoch;
	k->gen = gen;
	return k->key;
}

/* Additional data: key name, nonce and length, so none can be swapped. */
static void ticket_aad(uint8_t aad[16 + 12 + 4], const unsigned char *key_name,
		       const unsigned char *iv, int len)
{
	memcpy(aad, key_name, 16);
	memcpy(aad + 16, iv, 12);
	aad[28] = (uint8_t)(len >> 24);
	aad[29] = (uint8_t)(len >> 16);
	aad[30] = (uint8_t)(len >> 8);
	aad[31] = (uint8_t)len;
}

int tls_ticket_cb(WOLFSSL *ssl, unsigned char key_name[16], unsigned char iv[16],
		  unsigned char mac[32], int enc, unsigned char *ticket, int in_len,
		  int *out_len, void *arg)
{
	uint64_t now = ticket_epoch(), epoch;
	const uint8_t *key;
	uint8_t aad[32];
	bool renew = false;

	(void)ssl;
	(void)arg;
	if (in_len <= 0)
		return WOLFSSL_TICKET_RET_FATAL;
	if (enc) {
		memcpy(key_name, TICKET_MAGIC, 4);
		memcpy(key_name + 4, ticket_id, 4);
		put_be64(key_name + 8, now);
		if (fill_random(iv, 12))
			return WOLFSSL_TICKET_RET_FATAL;
		memset(iv + 12, 0, 4);
		memset(mac, 0, 32);
		key = ticket_key(now);
		if (!key)
			return WOLFSSL_TICKET_RET_FATAL;
		ticket_aad(aad, key_name, iv, in_len);
		if (wc_ChaCha20Poly1305_Encrypt(key, iv, aad, sizeof(aad), ticket, (word32)in_len,
						ticket, mac))
			return WOLFSSL_TICKET_RET_FATAL;
		*out_len = in_len;
		return WOLFSSL_TICKET_RET_OK;
	}

	/* Someone else's ticket (another process, a restart): not an error. */
	if (memcmp(key_name, TICKET_MAGIC, 4) || memcmp(key_name + 4, ticket_id, 4))
		return WOLFSSL_TICKET_RET_REJECT;
	epoch = get_be64(key_name + 8);
	if (epoch + 1 == now)
		renew = true;
	else if (epoch != now)
		return WOLFSSL_TICKET_RET_REJECT;
	key = ticket_key(epoch);
	if (!key)
		return WOLFSSL_TICKET_RET_REJECT;
	ticket_aad(aad, key_name, iv, in_len);
	if (wc_ChaCha20Poly1305_Decrypt(key, iv, aad, sizeof(aad), ticket, (word32)in_len, mac,
					ticket))
		return WOLFSSL_TICKET_RET_REJECT;
	*out_len = in_len;
	return renew ? WOLFSSL_TICKET_RET_CREATE : WOLFSSL_TICKET_RET_OK;
}
