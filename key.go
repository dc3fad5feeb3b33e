package ratelimit

import (
	"crypto/sha256"
	"encoding/base64"
)

// maxRawKey is the longest user key used verbatim in a Redis key; longer keys,
// and keys with bytes outside rawKeyByte, are hashed.
const maxRawKey = 64

// hashedIDLen is the length of a hashed id: "#" and 96 bits of SHA-256 in
// unpadded base64url. 96 bits keep a second preimage (an attacker's key that
// shares a victim's bucket) out of reach, and keep a typical hashed Redis key
// under 31 bytes, where Redis allocates it in 32 (72 bytes per key in all).
const hashedIDLen = 1 + 16

// redisKey returns the Redis key for a user key: KeyPrefix + Name + ":{" + id + "}".
//
// id is the user key itself when it is at most 64 bytes of [A-Za-z0-9._:@/+=~-]
// (readable in redis-cli), and otherwise "#" followed by the first 96 bits of
// the key's SHA-256 in unpadded base64url (17 bytes). Raw ids never contain '#', '{' or '}', so a raw
// id never equals a hashed one, braces in a user key never move the hash tag,
// and two different (Name, key) pairs never share a Redis key. The whole id is
// the hash tag, so every key of one identity lands in one Cluster slot while
// different identities spread over all slots.
func (l *Limiter) redisKey(key string) string {
	raw := len(key) > 0 && len(key) <= maxRawKey
	for i := 0; raw && i < len(key); i++ {
		raw = rawKeyByte(key[i])
	}
	if raw {
		return l.keyHead + key + "}"
	}
	sum := sha256.Sum256([]byte(key))
	var buf [maxPrefixLen + maxNameLen + 2 + hashedIDLen + 1]byte
	b := append(buf[:0], l.keyHead...)
	b = append(b, '#')
	b = base64.RawURLEncoding.AppendEncode(b, sum[:12])
	b = append(b, '}')
	return string(b)
}

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
