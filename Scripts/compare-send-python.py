#!/usr/bin/env python3
"""`refiner-segment send` beside segment-analytics-python, sending the same messages to one loopback server.

Usage (from the package root, after `swift build -c release --product refiner-segment`):

    pip install segment-analytics-python
    python3 Scripts/compare-send-python.py [RESPONSES]      # default 20000 responses

The script writes RESPONSES responses as JSON Lines, renders them with `refiner-segment render` (the messages
both clients send), starts a threaded HTTP/1.1 server on 127.0.0.1 that answers every batch 200 and counts the
messages it receives, then times:

- `refiner-segment send FILE --endpoint http://127.0.0.1:PORT`: reading, building and delivering, end to end;
- segment-analytics-python 2.x: `identify`/`group` for each rendered message, then `flush()`, with its
  defaults except the host (so it sends the already-normalized traits; it does no key normalization).

Both figures are messages per second, received by the server, in one run on the same machine.
"""

import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESPONSES = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
TOOL = os.path.join(".build", "release", "refiner-segment")


# The server runs in a process of its own, so that it does not share Python's interpreter lock with the
# Python client it measures; it counts received messages in shared memory.
COUNTER = multiprocessing.Value("q", 0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            # URLSession streams a large body in chunks, without a Content-Length.
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                chunk = self.rfile.read(size)
                self.rfile.readline()
                if size == 0:
                    break
                body += chunk
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        with COUNTER.get_lock():
            COUNTER.value += body.count(b'"messageId"')
        answer = b'{"success":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *arguments):
        pass


def write_responses(path):
    with open(path, "w") as file:
        for index in range(RESPONSES):
            answers = [
                {"question": {"id": f"q{position}", "text": text, "attribution": attribution}, "value": value}
                for position, (text, attribution, value) in enumerate(
                    [
                        ("What is your job role?", "user", "CEO"),
                        ("How big is your team?", "user", index % 11),
                        ("How did you hear about us?", "user", "A friend"),
                        ("Which plan are you currently on?", "user", "Pro"),
                        ("What's the main reason for your score?", "user", f"answer {index % 7}"),
                        ("How many employees work at your company?", "account", "1000+"),
                        ("Which industry are you in?", "account", "Retail"),
                    ]
                )
            ]
            record = {
                "id": f"resp_{index}",
                "completedAt": "2026-11-20T10:15:00.000Z",
                "survey": {"id": "onboarding", "name": "Onboarding"},
                "user": {"id": f"user-{index % 5000}", "email": f"person{index % 5000}@example.com"},
                "account": {"id": f"account-{index % 800}"},
                "answers": answers,
            }
            file.write(json.dumps(record) + "\n")


def main():
    if not os.path.exists(TOOL):
        sys.exit(f"build the tool first: swift build -c release --product refiner-segment ({TOOL} is missing)")
    import segment.analytics as analytics

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    serving = multiprocessing.Process(target=server.serve_forever, daemon=True)
    serving.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"

    with tempfile.TemporaryDirectory() as directory:
        responses = os.path.join(directory, "responses.jsonl")
        write_responses(responses)
        rendered = subprocess.run([TOOL, "render", responses], check=True, capture_output=True).stdout
        messages = [json.loads(line) for line in rendered.splitlines()]

        environment = dict(os.environ, SEGMENT_WRITE_KEY="compare-write-key")
        COUNTER.value = 0
        start = time.perf_counter()
        subprocess.run(
            [TOOL, "send", responses, "--endpoint", endpoint, "--failed", os.path.join(directory, "failed.jsonl")],
            check=True,
            env=environment,
            stderr=subprocess.DEVNULL,
        )
        ours_seconds = time.perf_counter() - start
        ours = COUNTER.value

        analytics.write_key = "compare-write-key"
        analytics.host = endpoint
        # Room for every message: the default queue (10,000) drops messages when full.
        analytics.max_queue_size = len(messages) + 1
        COUNTER.value = 0
        start = time.perf_counter()
        for message in messages:
            common = dict(
                user_id=message.get("userId"),
                anonymous_id=message.get("anonymousId"),
                traits=message.get("traits", {}),
                context=message.get("context", {}),
                timestamp=None,
                message_id=message["messageId"],
            )
            if message["type"] == "group":
                analytics.group(group_id=message["groupId"], **common)
            else:
                analytics.identify(**common)
        analytics.flush()
        python_seconds = time.perf_counter() - start
        python = COUNTER.value
    serving.terminate()

    print(f"refiner-segment send: {ours} messages in {ours_seconds:.2f} s = {ours / ours_seconds:,.0f} messages/s")
    print(
        f"segment-analytics-python {analytics.VERSION}: {python} messages in {python_seconds:.2f} s"
        f" = {python / python_seconds:,.0f} messages/s"
    )
    print(f"ratio: {(ours / ours_seconds) / (python / python_seconds):.1f}x")
    if ours != len(messages) or python != len(messages):
        print(f"warning: the server counted {ours} and {python} of {len(messages)} messages")


if __name__ == "__main__":
    main()
