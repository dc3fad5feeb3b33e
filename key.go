package ratelimit

import (
	"crypto/sha256"
	"encoding/base64"
)

// maxRawKey is the longest user key used verbatim in a Redis key; longer keys,
// and keys with bytes outside rawKeyByte, are hashed.
const maxRawKey = 64

// redisKey returns the Redis key for a user key: KeyPrefix + Name + ":{" + id + "}".
//
// id is the user key itself when it is at most 64 bytes of [A-Za-z0-9._:@/+=~-]
// (readable in redis-cli), and otherwise "#" followed by the unpadded base64url
// SHA-256 of the key (23 bytes). Raw ids never contain '#', '{' or '}', so a raw
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
	var buf [maxPrefixLen + maxNameLen + 2 + 1 + 22 + 1]byte
	b := append(buf[:0], l.keyHead...)
	b = append(b, '#')
	b = base64.RawURLEncoding.AppendEncode(b, sum[:16])
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
