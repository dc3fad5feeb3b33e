package ratelimit

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// maxRawKey is the longest user key used verbatim in a Redis key; longer keys,
// and keys with bytes outside rawKeyByte, are hashed.
const maxRawKey = 64

// hashedIDLen is the length of a hashed id: "#" and 96 bits of SHA-256 in
// unpadded base64url. 96 bits keep a second preimage (an attacker's key that
// shares a victim's bucket) out of reach, and keep a typical hashed Redis key
// under 31 bytes, where Redis allocates it in 32 (72 bytes per key in all).
const hashedIDLen = 1 + 16

// keys returns the Redis keys of a user key: the identity's lock first, then
// one state key per rate, each KeyPrefix + Name + ":{" + id + "}" + a suffix:
// ":lock", or ":" + the algorithm's letter + the rate's Period (":t1m",
// ":w24h"), so that no two algorithms or Periods share a key.
//
// id is the user key itself when it is at most 64 bytes of [A-Za-z0-9._:@/+=~-]
// (readable in redis-cli), and otherwise "#" followed by the first 96 bits of
// the key's SHA-256 in unpadded base64url (17 bytes). Raw ids never contain '#', '{' or '}', so a raw
// id never equals a hashed one, braces in a user key never move the hash tag,
// and two different (Name, key) pairs never share a Redis key. The whole id is
// the hash tag, so every key of one identity lands in one Cluster slot while
// different identities spread over all slots. All the keys are slices of one
// string: one allocation for the lot.
func (l *Limiter) keys(key string) []string {
	raw := len(key) > 0 && len(key) <= maxRawKey
	for i := 0; raw && i < len(key); i++ {
		raw = rawKeyByte(key[i])
	}
	var idBuf [maxRawKey]byte
	id := idBuf[:0]
	if raw {
		id = append(id, key...)
	} else {
		sum := sha256.Sum256([]byte(key))
		id = append(id, '#')
		id = base64.RawURLEncoding.AppendEncode(id, sum[:12])
	}
	head := len(l.keyHead) + len(id) + 1
	size := head + len(lockSuffix)
	for _, sfx := range l.rates.suffix {
		size += head + len(sfx)
	}
	var b strings.Builder
	b.Grow(size)
	var endBuf [maxRates + 1]int
	ends := endBuf[:0]
	for i := -1; i < len(l.rates.suffix); i++ {
		b.WriteString(l.keyHead)
		b.Write(id)
		b.WriteByte('}')
		if i < 0 {
			b.WriteString(lockSuffix)
		} else {
			b.WriteString(l.rates.suffix[i])
		}
		ends = append(ends, b.Len())
	}
	all := b.String()
	keys := make([]string, len(ends))
	from := 0
	for i, e := range ends {
		keys[i], from = all[from:e], e
	}
	return keys
}

// lockSuffix ends the name of an identity's lock key.
const lockSuffix = ":lock"

func rawKeyByte(b byte) bool {
	switch {
	case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		return true
	}
	switch b {
	case '.', '_', '-', ':', '@', '/', '+', '=', '~':
		return true
	}
	return false
}
