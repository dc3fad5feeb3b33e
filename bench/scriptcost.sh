#!/usr/bin/env bash
# scriptcost.sh: what a decision costs inside Redis, against scripts that
# only make its Redis calls and decide nothing.
#
# It starts its own redis-server on a free loopback port, runs each script
# under redis-benchmark (64 clients, pipelines of 16, 10000 keys already in
# use) and prints the median of Redis's usec_per_call for EVALSHA over
# ROUNDS interleaved runs (default 5). The skeletons show the floor each key
# layout puts under a decision: no logic can make a script cheaper than the
# Redis calls it makes. See docs/benchmarks-summary.md for what the numbers
# mean for the targets.
#
#   bash bench/scriptcost.sh            # from the module root
#   ROUNDS=9 bash bench/scriptcost.sh
#
# Needs redis-server, redis-cli and redis-benchmark (apt-get install
# redis-server redis-tools). A round takes about 15 seconds.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-5}
for tool in redis-server redis-cli redis-benchmark; do
	command -v "$tool" >/dev/null || { echo "scriptcost: $tool not found: apt-get install redis-server redis-tools" >&2; exit 1; }
done

# A free loopback port: one where nothing answers.
port=
for _ in $(seq 100); do
	p=$((20000 + RANDOM % 40000))
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n $port ]] || { echo "scriptcost: no free loopback port found" >&2; exit 1; }
dir=$(mktemp -d)
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
	--daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log"
stop() {
	local pid
	pid=$(cat "$dir/redis.pid" 2>/dev/null) && kill "$pid" 2>/dev/null &&
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -rf "$dir"
}
trap stop EXIT
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
for _ in $(seq 50); do cli ping >/dev/null 2>&1 && break; sleep 0.1; done

# The subjects: name, script, then the EVALSHA arguments after the SHA.
# Bucket rates: interval 1h (0xd693a400 µs), capacity 0xa3b5840f40000 µs;
# window rates: period 1h (0x36ee80 ms), limit 800000 (0xc3500).
names=() files=() args=()
add() { names+=("$1"); files+=("$2"); args+=("$3"); }
cat >"$dir/return1.lua" <<'EOF'
return 1
EOF
cat >"$dir/calls-1.lua" <<'EOF'
local a = redis.call('PTTL', KEYS[1])
local b = redis.call('PTTL', KEYS[2])
return redis.call('INCRBY', KEYS[2], '3600000000')
EOF
cat >"$dir/calls-1-nolock.lua" <<'EOF'
local b = redis.call('PTTL', KEYS[2])
return redis.call('INCRBY', KEYS[2], '3600000000')
EOF
cat >"$dir/calls-2.lua" <<'EOF'
local a = redis.call('PTTL', KEYS[1])
local b = redis.call('PTTL', KEYS[2])
local x = redis.call('INCRBY', KEYS[2], '3600000000')
local c = redis.call('PTTL', KEYS[3])
return {x, redis.call('INCRBY', KEYS[3], '3600000000')}
EOF
cat >"$dir/hash-1.lua" <<'EOF'
local b = redis.call('PTTL', KEYS[2])
return redis.call('HINCRBY', KEYS[2], 'a', '3600000000')
EOF
cat >"$dir/hash-2.lua" <<'EOF'
local b = redis.call('PTTL', KEYS[2])
local x = redis.call('HINCRBY', KEYS[2], 'a', '3600000000')
return {x, redis.call('HINCRBY', KEYS[2], 'b', '3600000000')}
EOF
one='2 lock:__rand_int__ a:__rand_int__'
two='3 lock:__rand_int__ a:__rand_int__ b:__rand_int__'
hash='2 lock:__rand_int__ h:__rand_int__'
wone='2 lock:__rand_int__ wa:__rand_int__'
wtwo='3 lock:__rand_int__ wa:__rand_int__ wb:__rand_int__'
tb1='"" 1 "" d693a400 a3b5840f40000'
sw1='"" 1 "" 36ee80 c3500'
add "return 1" "$dir/return1.lua" "$one"
add "calls of one rate: PTTL lock, PTTL, INCRBY" "$dir/calls-1.lua" "$one"
add "the same without the lock's PTTL" "$dir/calls-1-nolock.lua" "$one"
add "one rate as a hash field: PTTL, HINCRBY" "$dir/hash-1.lua" "$hash"
add "calls of two rates: PTTL lock, 2x (PTTL, INCRBY)" "$dir/calls-2.lua" "$two"
add "two rates as hash fields: PTTL, 2x HINCRBY" "$dir/hash-2.lua" "$hash"
add "tokenbucket.lua, one rate" "$root/tokenbucket.lua" "$one $tb1"
add "tokenbucket.lua, two rates" "$root/tokenbucket.lua" "$two $tb1 d693a400 a3b5840f40000"
add "slidingwindow.lua, one rate" "$root/slidingwindow.lua" "$wone $sw1"
add "slidingwindow.lua, two rates" "$root/slidingwindow.lua" "$wtwo $sw1 36ee80 c3500"

# Every key in use, set again before each subject: bucket state (o = -10^12µs
# with 1000h left: well under the capacity, so an admission needs no write
# but its INCRBY), window state (5 in an open window, 1.5h left) and a
# two-field hash like the buckets' state.
seed() {
	cli EVAL "for i = 0, 9999 do
	  local s = string.format('%012d', i)
	  for _, k in ipairs({'a:', 'b:'}) do redis.call('SET', k .. s, '-1000000000000', 'PX', '3600000000') end
	  for _, k in ipairs({'wa:', 'wb:'}) do redis.call('SET', k .. s, '5', 'PX', '5400000') end
	  redis.call('HSET', 'h:' .. s, 'a', '-1000000000000', 'b', '-1000000000000')
	  redis.call('PEXPIRE', 'h:' .. s, '3600000000')
	end return 1" 0 >/dev/null
}

declare -A runs
for r in $(seq "$rounds"); do
	for i in "${!names[@]}"; do
		seed
		sha=$(cli SCRIPT LOAD "$(cat "${files[$i]}")")
		cli CONFIG RESETSTAT >/dev/null
		# eval: the arguments hold quoted empty strings ("" mode, "" lockout).
		eval "redis-benchmark -h 127.0.0.1 -p $port -c 64 -P 16 -n 400000 -r 10000 -q EVALSHA $sha ${args[$i]}" >/dev/null
		if cli INFO errorstats | grep -q '^errorstat'; then
			echo "scriptcost: ${names[$i]} replied errors: $(cli INFO errorstats | grep '^errorstat')" >&2
			exit 1
		fi
		us=$(cli INFO commandstats | grep -o 'cmdstat_evalsha:[^,]*,[^,]*,usec_per_call=[0-9.]*' | sed 's/.*=//')
		runs[$i]="${runs[$i]:-} $us"
	done
	echo "round $r of $rounds done" >&2
done

echo "redis-server $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-), 64 clients, pipelines of 16, keys in use; µs per EVALSHA, median of $rounds:"
for i in "${!names[@]}"; do
	med=$(tr ' ' '\n' <<<"${runs[$i]}" | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	printf '  %6s  %s   (runs:%s)\n' "$med" "${names[$i]}" "${runs[$i]}"
done
