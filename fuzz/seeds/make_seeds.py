#!/usr/bin/env python3
"""Writes the committed seed corpus: python3 fuzz/seeds/make_seeds.py (from anywhere).

Deliveries are header blocks (`name: value` lines, an empty line, the body; see src/lib.rs),
signed here with the Standard Webhooks vectors' secrets so that they verify at the fuzzers'
fixed clock (1614265330). Seeds of the structured targets (verify_mutated, queue_sqlite_rows,
queue_redis_entry) are arbitrary bytes from a fixed generator; those of queue_url are queue URLs.
"""
import base64, hashlib, hmac, json, os, random

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = 1614265330
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET2 = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
SECRET3 = "whsec_plJ3nmyCDGBKInavdOK15jsl"
ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
BODY = b'{"test": 2432232314}'
SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
V1A = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
PK = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4="
SK = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg=="


def key(secret):
    text = secret.removeprefix("whsec_")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def sign(secret, msg_id, ts, body):
    mac = hmac.new(key(secret), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def block(headers, body):
    return "".join(f"{n}: {v}\n" for n, v in headers).encode() + b"\n" + body


def delivery(msg_id=ID, ts=NOW, body=BODY, secret=SECRET, names="webhook", sig=None):
    sig = sig if sig is not None else sign(secret, msg_id, ts, body)
    return block([(f"{names}-id", msg_id), (f"{names}-timestamp", ts), (f"{names}-signature", sig)], body)


def envelope(event_type, data, **extra):
    return json.dumps({"id": "whe_1", "type": event_type, "timestamp": "2025-07-24T22:51:05.206Z", "data": data, **extra}).encode()


UPDATES = envelope("producersync.updates_available", {"runDate": "2025-07-24"})
ACTIVATED = envelope("producersync.npn.activated", {"npn": "19370865", "activatedAt": "2025-07-24T22:51:05.206Z"})
deliveries = {
    "vector_v1": delivery(sig=SIG),
    "vector_v1_svix": delivery(sig=SIG, names="svix"),
    "vector_v1a": delivery(sig=V1A),
    "vector_decoys": delivery(sig=f"v1a,AAAA v2,xyz v1,g0hM9SsE {SIG} {V1A}"),
    "vector_2": delivery("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, b'{"email":"test@example.com","username":"test_user"}', SECRET2),
    "vector_3": delivery("msg_loFOjxBNrRLzqYUf", 1731705121, b'{"event_type":"ping","data":{"success":true}}', SECRET3),
    "updates_available": delivery("msg_2f1b", NOW - 12, UPDATES),
    "npn_activated_rotated": delivery("msg_2f1c", NOW + 7, ACTIVATED, SECRET2),
    "unknown_type": delivery("msg_2f1d", NOW, b'{"type":"endpoint.verify","data":{"x":[1,2.5,null]}}', SECRET3),
    "unpadded_tag": delivery(sig=SIG.rstrip("=")),
    "seventeenth_entry": delivery(sig=" ".join(["v1,xx"] * 16 + [SIG])),
    "upper_case_names": block([("WEBHOOK-ID", ID), ("Webhook-Timestamp", NOW), ("Webhook-Signature", SIG)], BODY),
    "leading_zero_timestamp": delivery(ts="0" + str(NOW), sig=sign(SECRET, ID, "0" + str(NOW), BODY)),
    "too_old": delivery(ts=NOW - 301),
    "negative_timestamp": delivery(ts=-1),
    "missing_signature": block([("webhook-id", ID), ("webhook-timestamp", NOW), ("content-length", "20")], BODY),
    "blank_signature": delivery(sig="   "),
    "non_utf8_body": delivery(body=b"\xff\xfe{\x80"),
}
envelopes = {
    "updates_available": UPDATES,
    "npn_activated": ACTIVATED,
    "npn_as_number": envelope("producersync.npn.deactivated", {"npn": 19370865, "deactivatedAt": "2025-07-24 22:51:05+01:00"}),
    "contract_updated": envelope("contract.updated", {"contractId": "ctr_1", "npn": "19370865", "status": "ACTIVE"}),
    "missing_run_date": envelope("producersync.updates_available", {}),
    "relaxed_date": envelope("producersync.updates_available", {"runDate": "+2025-7-4"}),
    "unknown_type": b'{"type":"endpoint.verify"}',
    "only_type_data_null": b'{"type":"contract.updated","data":null,"id":null,"timestamp":null}',
    "huge_number_unknown_type": b'{"type":"future.event","data":{"amount":1e400}}',
    "nested": b'{"type":"x","data":' + b"[" * 100 + b"]" * 100 + b"}",
    "escaped_strings": b'{"id":"whe_\\u00e9","type":"contract.\\u0075pdated","data":{"a":"\\ud83d\\ude00"}}',
    "not_an_object": b'[{"type":"contract.updated"}]',
    "whitespace_first": b' \n\t{"type":"x", "timestamp":"2025-02-30T00:00:00Z"}',
}
secrets = {
    "vector": SECRET.encode(),
    "no_prefix": SECRET[6:].encode(),
    "unpadded_18_bytes": SECRET3.encode(),
    "padded_spaces": b"  whsec_YWJjZA==\n",
    "trailing_bits": b"whsec_YWJjZB",
    "signature": SIG.encode(),
    "public_key": PK.encode(),
    "signing_key": SK.encode(),
    "rotation": f"{SECRET} {SECRET2}\n{SECRET3}".encode(),
    "empty_after_prefix": b"whsec_",
}
rng = random.Random(15)
mutated = {f"random_{n}": bytes(rng.randrange(256) for _ in range(n)) for n in (0, 16, 64, 200, 600)}
# Queue URLs as a service's configuration holds them, and the near misses.
queue_urls = {
    "empty": b"",
    "spaces": b" \t\n",
    "sqlite_slashes": b"sqlite:///var/lib/app/queue.sqlite3",
    "sqlite_relative": b"sqlite:queue.sqlite3",
    "sqlite_upper_spaced": b"  SQLite://data/q.db\n",
    "sqlite_four_slashes": b"sqlite:////abs/q.db",
    "sqlite_no_path": b"sqlite://",
    "sqlite_bare": b"sqlite:",
    "redis": b"redis://127.0.0.1:6379/2",
    "redis_password": b"redis://default:hunter22@redis.internal:6379/0",
    "rediss_user": b"rediss://app:p%40ss:w0rd@cache:6380",
    "redis_unix": b"redis+unix:///run/redis.sock?db=1",
    "unix": b"unix:///run/redis.sock",
    "postgres": b"postgres://postgres@127.0.0.1:5432/app",
    "postgresql_password": b"postgresql://app:hunter22@db/app?sslmode=require",
    "postgres_query_password": b"postgres://db/app?user=app&password=hunter22",
    "mysql_password": b"mysql://root:hunter22@db/app",
    "no_scheme": b"queue.sqlite3",
    "colon_first": b":memory:",
    "http": b"http://user:hunter22@host/",
    "not_utf8": b"redis://\xff\xfe@h",
    # The queue's settings in the query string (64535ed).
    "cluster_settings": b"redis+cluster://a:7000,b:7000?prefix=billing%3A&partitions=3&group=g",
    "redis_wait": b"rediss://:pw@h/0?wait_replicas=1&wait_timeout_ms=250&persistence=required#x",
    "postgres_hosts_table": b"postgres://u:pw@db1,db2/app?target_session_attrs=read-write&table=q",
    # The first run's failure, reduced: an empty prefix= (the model predated the settings).
    "empty_prefix": b"rEDis+unix://i?prefix&",
    "timeout_alone": b"redis://h?wait_timeout_ms=5",
    "percent_sign": b"redis://h?prefix=%+a",
}
# Structured (arbitrary) inputs: bytes from a fixed generator, which arbitrary reads as rows and
# operations whatever they are.
rng = random.Random(25)
sqlite_rows = {f"random_{n}": bytes(rng.randrange(256) for _ in range(n)) for n in (0, 32, 128, 512, 2048)}
sqlite_rows["ones_256"] = b"\x01" * 256
redis_entries = {f"random_{n}": bytes(rng.randrange(256) for _ in range(n)) for n in (0, 32, 128, 512)}
redis_entries["ones_128"] = b"\x01" * 128

for target, seeds in [("headers", deliveries), ("verify", deliveries), ("envelope", envelopes), ("secret", secrets), ("verify_mutated", mutated), ("queue_url", queue_urls), ("queue_sqlite_rows", sqlite_rows), ("queue_redis_entry", redis_entries)]:
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(HERE, target, name), "wb") as f:
            f.write(data)
