"""Cold start and per-invocation duration of the Lambda functions, measured the way Lambda
sees them: each binary is started against a local Lambda Runtime API (this script), which
times process start -> first `GET /invocation/next` (init) and each event handed out ->
its response posted (duration). Then prices 1,000 text analyses at AWS list prices.

Driven by scripts/bench-lambdas, which builds the binaries, starts moto and creates the
database; this script creates the AWS resources, a user and the events.
"""

import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEMORY_MB = 256  # template.yaml Globals


class Runtime(http.server.ThreadingHTTPServer):
    """The Lambda Runtime API for one function process (a fresh port each, so a killed
    process's last poll can never take the next one's events)."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the process is killed mid-connection once its last answer is in

    def __init__(self, events):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Condition()
        self.events = list(events)
        self.first_poll = None
        self.handed_out = {}
        self.durations = []
        self.answers = []

    def wait_done(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.durations) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.durations)}/{count} invocations answered")
                self.lock.wait(left)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server = self.server
        if not self.path.endswith("/runtime/invocation/next"):
            return self.reply(404)
        with server.lock:
            if server.first_poll is None:
                server.first_poll = time.monotonic()
                server.lock.notify_all()
        while True:
            with server.lock:
                if server.events:
                    event = server.events.pop(0)
                    request_id = str(uuid.uuid4())
                    server.handed_out[request_id] = time.monotonic()
                    break
            time.sleep(0.001)
        body = json.dumps(event).encode()
        deadline = str(int(time.time() * 1000) + 30_000)
        self.reply(200, body, [
            ("Lambda-Runtime-Aws-Request-Id", request_id),
            ("Lambda-Runtime-Deadline-Ms", deadline),
            ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench"),
            ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
            ("content-type", "application/json"),
        ])

    def do_POST(self):
        server = self.server
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        parts = self.path.split("/")
        if "invocation" in parts and parts[-1] in ("response", "error"):
            request_id = parts[parts.index("invocation") + 1]
            with server.lock:
                started = server.handed_out.pop(request_id, None)
                if started is not None:
                    server.durations.append((time.monotonic() - started) * 1000)
                    server.answers.append((parts[-1], body))
                    server.lock.notify_all()
        self.reply(202, b'{"status":"OK"}', [("content-type", "application/json")])


def aws(endpoint, service, target, payload):
    """One JSON-protocol call to moto (DynamoDB, Secrets Manager, Step Functions)."""
    prefixes = {"dynamodb": "DynamoDB_20120810", "secretsmanager": "secretsmanager", "states": "AWSStepFunctions"}
    request = urllib.request.Request(endpoint + "/", data=json.dumps(payload).encode(), method="POST", headers={
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": f"{prefixes[service]}.{target}",
        "authorization": f"AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=x",
    })
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read() or b"{}")


def event(name, subs):
    with open(os.path.join(ROOT, "events", name)) as f:
        text = f.read()
    for k, v in subs.items():
        text = text.replace(k, v)
    return json.loads(text)


def first_record_only(e):
    """Light traffic: Lambda hands a stage one message at a time."""
    return dict(e, Records=e["Records"][:1])


def main():
    bin_dir, goviral, database_url, endpoint = sys.argv[1:5]
    runs, invocations = int(sys.argv[5]), int(sys.argv[6])
    tag = uuid.uuid4().hex[:8]

    # The AWS side, as template.yaml declares it.
    bucket = f"goviral-bench-{tag}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT")).read()
    counters, keys = f"counters-{tag}", f"idempotency-{tag}"
    aws(endpoint, "dynamodb", "CreateTable", {"TableName": counters, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "key", "AttributeType": "S"}], "KeySchema": [{"AttributeName": "key", "KeyType": "HASH"}]})
    aws(endpoint, "dynamodb", "CreateTable", {"TableName": keys, "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"}, {"AttributeName": "key", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "key", "KeyType": "RANGE"}]})
    jwt = aws(endpoint, "secretsmanager", "CreateSecret", {"Name": f"jwt-{tag}", "SecretString": uuid.uuid4().hex * 2})["ARN"]
    db = urllib.parse.urlparse(database_url)
    db_secret = aws(endpoint, "secretsmanager", "CreateSecret", {"Name": f"db-{tag}", "SecretString": json.dumps({
        "username": db.username or "postgres", "password": db.password or "", "host": db.hostname, "port": db.port or 5432,
        "dbname": db.path.lstrip("/")})})["ARN"]
    machine = aws(endpoint, "states", "CreateStateMachine", {"name": f"bench-{tag}", "roleArn": "arn:aws:iam::123456789012:role/x",
        "definition": json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})})["stateMachineArn"]

    user = json.loads(subprocess.check_output([goviral, "users", "create", "--email", f"bench-{tag}@example.com", "--plan", "enterprise"],
                                              env=dict(os.environ, GOVIRAL_DATABASE_URL=database_url)))
    env = dict(os.environ,
               AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(MEMORY_MB), AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench",
               AWS_LAMBDA_LOG_GROUP_NAME="bench", GOVIRAL_DATABASE_SECRET_ARN=db_secret, GOVIRAL_DATABASE_SSLMODE="disable",
               GOVIRAL_DB_MAX_CONNECTIONS="2", GOVIRAL_DB_ACQUIRE_TIMEOUT_MS="2000", GOVIRAL_LOG_JSON="true", RUST_LOG="warn",
               GOVIRAL_BLOB_BUCKET=bucket, GOVIRAL_S3_PATH_STYLE="true")
    api_env = dict(GOVIRAL_JWT_SECRET_ARN=jwt, GOVIRAL_COUNTERS_TABLE=counters, GOVIRAL_IDEMPOTENCY_TABLE=keys, GOVIRAL_STATE_MACHINE_ARN=machine)

    def run(function, events, extra_env):
        """Starts the function on a fresh runtime and waits until it has answered every event."""
        runtime = Runtime(events)
        threading.Thread(target=runtime.serve_forever, daemon=True).start()
        # The function's log goes to a file, so a chatty process never blocks on a full pipe.
        with tempfile.TemporaryFile() as log:
            started = time.monotonic()
            proc = subprocess.Popen([os.path.join(bin_dir, function)], env=dict(env, **extra_env,
                                    AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{runtime.server_address[1]}", AWS_LAMBDA_FUNCTION_NAME=function),
                                    stdout=subprocess.DEVNULL, stderr=log)
            try:
                runtime.wait_done(len(events), 60)
            except TimeoutError as e:
                log.seek(0)
                raise SystemExit(f"{function}: {e}; stderr: {log.read().decode()[-2000:]}")
            finally:
                proc.kill()
                proc.wait()
                runtime.shutdown()
                runtime.server_close()
        return runtime, (runtime.first_poll - started) * 1000

    answers = {}

    def measure(function, events, extra_env):
        """`events(run)`: the events of one cold start, each doing real work (a fresh job)."""
        inits, durations, errors = [], [], 0
        for r in range(runs):
            runtime, init = run(function, events(r), extra_env)
            inits.append(init)
            durations.extend(runtime.durations[1:])  # the first one also opens the connections
            errors += sum(1 for kind, _ in runtime.answers if kind == "error")
            answers.setdefault(function, []).extend(body for _, body in runtime.answers)
        return inits, durations, errors

    subs = {"REPLACE_WITH_API_KEY": user["api_key"], "REPLACE_WITH_USER_ID": user["user_id"], "REPLACE_WITH_ADMIN_API_KEY": user["api_key"]}
    analyze = event("apigw-analyze.json", subs)
    rows = {}
    rows["api-analyze"] = measure("api-analyze", lambda r: [analyze] * invocations, api_env)
    # Every submission above made a job; each stage invocation below works on a job of its own,
    # in pipeline order, as Step Functions would hand them out.
    try:
        jobs = [json.loads(json.loads(body)["body"])["job_id"] for body in answers["api-analyze"]]
    except (KeyError, ValueError) as e:
        raise SystemExit(f"api-analyze did not answer with job ids: {answers['api-analyze'][0][:300]!r}: {e}")

    def per_job(name, single=False):
        def events(r):
            out = []
            for i in range(invocations):
                job = jobs[r * invocations + i]
                e = event(name, dict(subs, REPLACE_WITH_JOB_ID=job, REPLACE_WITH_FAILED_JOB_ID=job))
                out.append(first_record_only(e) if single else e)
            return out
        return events

    rows["api-analyze-status"] = measure("api-analyze-status", per_job("apigw-analyze-status.json"), api_env)
    for stage in ["moderation", "extraction", "inference", "webhook"]:
        rows[f"stage-{stage}"] = measure(f"stage-{stage}", per_job(f"sqs-stage-{stage}.json", single=True), {})
    # The stages did the real work: the last job is scored.
    check, _ = run("api-analyze-status", [event("apigw-analyze-status.json", dict(subs, REPLACE_WITH_JOB_ID=jobs[-1]))], api_env)
    final = json.loads(json.loads(check.answers[0][1])["body"])
    if final.get("status") != "complete":
        raise SystemExit(f"the stages did not complete job {jobs[-1]}: {final}")
    intake = event("s3-upload-intake.json", dict(subs, REPLACE_WITH_UPLOAD_ID=str(uuid.uuid4()), REPLACE_WITH_SHORT_UPLOAD_ID=str(uuid.uuid4())))
    rows["upload-intake"] = measure("upload-intake", lambda r: [first_record_only(intake)] * invocations, {})
    health = event("apigw-health.json", subs)
    rows["api-health"] = measure("api-health", lambda r: [health] * invocations, {"GOVIRAL_JWT_SECRET_ARN": jwt, "GOVIRAL_STATE_MACHINE_ARN": machine})

    def q(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

    print(f"{'function':22} {'init ms (median/max)':>22} {'warm ms (p50/p99)':>20} {'handler errors':>15}")
    for name, (inits, durations, errors) in rows.items():
        print(f"{name:22} {statistics.median(inits):>12.1f} / {max(inits):>6.1f} {q(durations, 50):>11.1f} / {q(durations, 99):>6.1f} {errors:>15}")

    # 1,000 text analyses at us-east-1 list prices (arm64). Lambda bills each invocation's
    # duration rounded up to 1 ms; one in `cold_share` pays its init too.
    per_gb_s, per_request = 0.0000133334, 0.20 / 1e6
    cold_share = 0.05
    path = ["api-analyze", "stage-moderation", "stage-extraction", "stage-inference", "stage-webhook", "api-analyze-status"]
    gb = MEMORY_MB / 1024
    lambda_cost = 0.0
    for name in path:
        inits, durations, _ = rows[name]
        ms = statistics.mean(durations) + cold_share * statistics.median(inits)
        lambda_cost += 1000 * (int(ms) + 1) / 1000 * gb * per_gb_s + 1000 * per_request
    transitions = 5  # Moderate, CheckModeration, Extract, Infer, Notify: infra/pipeline.asl.json's happy path
    costs = {
        "Lambda (6 invocations, 256 MB arm64)": lambda_cost,
        "Step Functions Standard (5 state transitions)": 1000 * transitions * 0.025 / 1000,
        "SQS (4 send + 4 receive + 4 delete)": 1000 * 12 * 0.40 / 1e6,
        "API Gateway HTTP API (submit + 1 status)": 1000 * 2 * 1.00 / 1e6,
        "DynamoDB on demand (rate limit write)": 1000 * 1 * 1.25 / 1e6,
        "S3 (features PUT + GET)": 1000 * (0.005 / 1000 + 0.0004 / 1000),
    }
    print("\nCost of 1,000 text analyses (us-east-1 list prices; RDS, RDS Proxy and OpenAI excluded):")
    for k, v in costs.items():
        print(f"  {k:45} ${v:.4f}")
    print(f"  {'total':45} ${sum(costs.values()):.4f}")


if __name__ == "__main__":
    main()
