"""BlueKing's own clients against `baton emulator`.

- ESB jobv3 through `bkapi-component-open` (PyPI), configured as an app configures it:
  the ESB endpoint, `bk_api_ver="v2"`, app code / secret / user in the client.
- Gateway v3 through `bkapi-client-core`'s APIGatewayClient, with the app's own
  operation table for bk-job and the gateway URL form `{BKAPI}/api/bk-job/{stage}`.
- Plain `requests` calls sending what bk-sops' classic `blueking.component` client
  sends: credentials in the `X-Bkapi-Authorization` header (current) or in the JSON
  body without a content type (older), GET parameters with Python's `True`.

Run: BATON_BIN=target/debug/baton python -m unittest tests/sdk/test_sdks.py
(tests/integration/sdk.rs runs it when BATON_SDK_PYTHON names the venv's python;
.ci/run sets that venv up.)
"""

import base64
import http.server
import logging
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import requests
from bkapi_client_core.apigateway import APIGatewayClient
from bkapi_client_core.base import Operation, OperationGroup
from bkapi_client_core.property import bind_property
from bkapi_client_core.exceptions import APIGatewayResponseError
from bkapi_component.open.client import Client as ComponentClient

HERE = os.path.dirname(os.path.abspath(__file__))
APP_CODE, APP_SECRET, USER = "sdk-app", "sdk-secret", "admin"
SCOPE = {"bk_scope_type": "biz", "bk_scope_id": "2"}
DEADLINE = 60
SOPS_VAR = re.compile(r"<SOPS_VAR>([^:]+):(.*?)</SOPS_VAR>")
# The SDK logs every refusal with a curl line; the refusals here are on purpose.
logging.getLogger("bkapi_client_core").setLevel(logging.CRITICAL)


class JobApi(OperationGroup):
    """The bk-job resources an app declares for bkapi-client-core (paths as bk-job's
    gateway resources name them)."""

    fast_execute_script = bind_property(
        Operation, name="fast_execute_script", method="POST", path="/api/v3/fast_execute_script"
    )
    fast_transfer_file = bind_property(
        Operation, name="fast_transfer_file", method="POST", path="/api/v3/fast_transfer_file"
    )
    execute_job_plan = bind_property(
        Operation, name="execute_job_plan", method="POST", path="/api/v3/execute_job_plan"
    )
    get_job_instance_status = bind_property(
        Operation, name="get_job_instance_status", method="GET", path="/api/v3/get_job_instance_status"
    )
    batch_get_job_instance_ip_log = bind_property(
        Operation,
        name="batch_get_job_instance_ip_log",
        method="POST",
        path="/api/v3/batch_get_job_instance_ip_log",
    )
    get_job_plan_detail = bind_property(
        Operation, name="get_job_plan_detail", method="GET", path="/api/v3/get_job_plan_detail"
    )
    get_job_instance_global_var_value = bind_property(
        Operation,
        name="get_job_instance_global_var_value",
        method="GET",
        path="/api/v3/get_job_instance_global_var_value",
    )
    operate_step_instance = bind_property(
        Operation, name="operate_step_instance", method="POST", path="/api/v3/operate_step_instance"
    )


class BkJobClient(APIGatewayClient):
    _api_name = "bk-job"
    api = bind_property(JobApi, name="api")


def b64(text):
    return base64.b64encode(text.encode()).decode()


class CallbackReceiver:
    """An HTTP server collecting the JSON bodies JOB posts to it."""

    def __init__(self):
        self.bodies = queue.Queue()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.bodies.put(json.loads(self.rfile.read(length) or b"null"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/job-callback" % self.server.server_address[1]

    def next(self):
        return self.bodies.get(timeout=DEADLINE)

    def close(self):
        self.server.shutdown()


class EmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        baton = os.environ.get("BATON_BIN") or os.path.join(HERE, "..", "..", "target", "debug", "baton")
        cls.root = tempfile.mkdtemp(prefix="baton-sdk-")
        cls.proc = subprocess.Popen(
            [baton, "emulator", "--listen", "127.0.0.1:0", "--world", os.path.join(HERE, "world.yaml"),
             "--root", cls.root],
            stdout=subprocess.PIPE,
            text=True,
        )
        first = cls.proc.stdout.readline()
        match = re.search(r"(http://\S+)", first)
        if not match:
            cls.proc.kill()
            raise RuntimeError("emulator did not start: %r" % first)
        cls.base = match.group(1)
        cls.esb = ComponentClient(endpoint=cls.base, bk_api_ver="v2")
        cls.esb.update_bkapi_authorization(bk_app_code=APP_CODE, bk_app_secret=APP_SECRET, bk_username=USER)
        cls.gateway = BkJobClient(endpoint=cls.base + "/api/bk-job/", stage="prod")
        cls.gateway.update_bkapi_authorization(bk_app_code=APP_CODE, bk_app_secret=APP_SECRET, bk_username=USER)

    @classmethod
    def tearDownClass(cls):
        cls.proc.kill()
        cls.proc.wait()
        shutil.rmtree(cls.root, ignore_errors=True)

    # helpers ---------------------------------------------------------------------

    def host_file(self, host, path):
        with open(os.path.join(self.root, "hosts", host.replace(":", "_"), path.lstrip("/"))) as f:
            return f.read()

    def ok(self, answer):
        self.assertIsInstance(answer, dict, answer)
        self.assertTrue(answer.get("result"), answer)
        self.assertEqual(answer.get("code"), 0, answer)
        return answer["data"]

    def wait(self, status_call, job_id):
        """Polls a status call until JOB says finished; the last data."""
        start = time.time()
        while True:
            data = self.ok(status_call(job_id))
            if data["finished"]:
                return data
            self.assertLess(time.time() - start, DEADLINE, data)
            time.sleep(0.05)

    def esb_status(self, job_id):
        return self.esb.jobv3.get_job_instance_status(dict(SCOPE, job_instance_id=job_id, return_ip_result=True))

    def gateway_status(self, job_id):
        return self.gateway.api.get_job_instance_status(dict(SCOPE, job_instance_id=job_id, return_ip_result=True))

    # bkapi-component-open: ESB jobv3 -----------------------------------------------

    def test_esb_sdk_script_logs_carry_sops_vars_and_callback_arrives(self):
        receiver = CallbackReceiver()
        try:
            data = self.ok(self.esb.jobv3.fast_execute_script(dict(
                SCOPE,
                script_language=1,
                script_content=b64('echo "<SOPS_VAR>build:$1</SOPS_VAR>"'),
                script_param=b64("42"),
                account_alias="root",
                target_server={"host_id_list": [11]},
                callback_url=receiver.url,
            )))
            job, step = data["job_instance_id"], data["step_instance_id"]
            end = self.wait(self.esb_status, job)
            self.assertEqual(end["job_instance"]["status"], 3, end)
            hosts = end["step_instance_list"][0]["step_ip_result_list"]
            self.assertEqual([h["ip"] for h in hosts], ["10.0.0.1"])
            log = self.ok(self.esb.jobv3.get_job_instance_ip_log(dict(
                SCOPE, job_instance_id=job, step_instance_id=step, bk_host_id=11)))
            self.assertEqual(dict(SOPS_VAR.findall(log["log_content"])), {"build": "42"})
            callback = receiver.next()
            self.assertEqual(callback["job_instance_id"], job)
            self.assertEqual(callback["status"], 3)
            self.assertEqual(callback["step_instances"][0]["step_instance_id"], step)
        finally:
            receiver.close()

    def test_esb_sdk_transfers_files_and_runs_plans(self):
        data = self.ok(self.esb.jobv3.fast_transfer_file(dict(
            SCOPE,
            file_target_path="/srv/app/",
            account_alias="root",
            file_source_list=[{
                "file_list": ["/data/release/app.txt"],
                "account": {"alias": "root"},
                "server": {"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]},
            }],
            target_server={"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.2"}]},
        )))
        end = self.wait(self.esb_status, data["job_instance_id"])
        self.assertEqual(end["job_instance"]["status"], 3, end)
        self.assertEqual(self.host_file("0:10.0.0.2", "/srv/app/app.txt"), "release 1.2.3\n")
        data = self.ok(self.esb.jobv3.fast_transfer_file(dict(
            SCOPE,
            file_target_path="/srv/pkg/",
            account_alias="root",
            file_source_list=[{"file_list": ["releases/app-1.2.3.tgz"], "file_type": 3,
                               "file_source_code": "artifacts"}],
            target_server={"host_id_list": [11, 12]},
        )))
        end = self.wait(self.esb_status, data["job_instance_id"])
        self.assertEqual(end["job_instance"]["status"], 3, end)
        for host in ("0:10.0.0.1", "0:10.0.0.2"):
            self.assertEqual(self.host_file(host, "/srv/pkg/app-1.2.3.tgz"), "tarball bytes\n")

        plans = self.ok(self.esb.jobv3.get_job_plan_list(dict(SCOPE)))
        self.assertIn(50, [p["id"] for p in plans["data"]])
        detail = self.ok(self.esb.jobv3.get_job_plan_detail(dict(SCOPE, job_plan_id=50)))
        self.assertEqual(detail["global_var_list"][0]["name"], "version")
        self.assertEqual(detail["step_list"][0]["script_info"]["account"]["name"], "root")
        data = self.ok(self.esb.jobv3.execute_job_plan(dict(
            SCOPE, job_plan_id=50, global_var_list=[{"name": "version", "value": "1.2.3"}])))
        job = data["job_instance_id"]
        end = self.wait(self.esb_status, job)
        self.assertEqual(end["job_instance"]["status"], 3, end)
        step = end["step_instance_list"][0]["step_instance_id"]
        logs = self.ok(self.esb.jobv3.batch_get_job_instance_ip_log(dict(
            SCOPE, job_instance_id=job, step_instance_id=step, host_id_list=[11, 12])))
        for entry in logs["script_task_logs"]:
            self.assertEqual(dict(SOPS_VAR.findall(entry["log_content"])), {"released": "1.2.3"}, entry)
        listed = self.ok(self.esb.jobv3.get_job_instance_list(dict(
            SCOPE, create_time_start=0, create_time_end=int(time.time() * 1000) + 60000, job_instance_id=job)))
        self.assertEqual([j["job_instance_id"] for j in listed["data"]], [job])
        values = self.ok(self.esb.jobv3.get_job_instance_global_var_value(dict(SCOPE, job_instance_id=job)))
        self.assertEqual(values["job_instance_id"], job)
        last = values["step_instance_var_list"][-1]["global_var_list"]
        self.assertEqual({v["name"]: v["value"] for v in last}["released_at"], "v1.2.3", values)

    def test_esb_sdk_operations_confirm_a_waiting_step(self):
        job = self.ok(self.esb.jobv3.execute_job_plan(dict(SCOPE, job_plan_id=60)))["job_instance_id"]
        start = time.time()
        while True:
            data = self.ok(self.esb_status(job))
            if data["job_instance"]["status"] == 7:
                break
            self.assertLess(time.time() - start, DEADLINE, data)
            time.sleep(0.05)
        step = data["step_instance_list"][0]["step_instance_id"]
        self.ok(self.esb.jobv3.operate_step_instance(dict(
            SCOPE, job_instance_id=job, step_instance_id=step, operation_code=6)))
        end = self.wait(self.esb_status, job)
        self.assertEqual(end["job_instance"]["status"], 3, end)
        self.assertEqual([s["status"] for s in end["step_instance_list"]], [3, 3])

        waiting = self.ok(self.esb.jobv3.execute_job_plan(dict(SCOPE, job_plan_id=60)))["job_instance_id"]
        while self.ok(self.esb_status(waiting))["job_instance"]["status"] != 7:
            time.sleep(0.05)
        self.ok(self.esb.jobv3.operate_job_instance(dict(SCOPE, job_instance_id=waiting, operation_code=1)))
        end = self.wait(self.esb_status, waiting)
        self.assertEqual(end["job_instance"]["status"], 11, end)  # 11: terminated

    def test_esb_sdk_sees_esb_envelope(self):
        answer = self.esb.jobv3.get_job_plan_list(dict(SCOPE))
        self.assertEqual(answer["message"], "")
        self.assertRegex(answer["request_id"], r"^[0-9a-f]{32}$")
        wrong = ComponentClient(endpoint=self.base, bk_api_ver="v2")
        wrong.update_bkapi_authorization(bk_app_code=APP_CODE, bk_app_secret="nope", bk_username=USER)
        refused = wrong.jobv3.get_job_plan_list(dict(SCOPE))
        self.assertFalse(refused["result"])
        self.assertEqual(refused["code"], 1306000)

    # bkapi-client-core: gateway v3 ------------------------------------------------

    def test_gateway_sdk_runs_script_and_plan(self):
        data = self.ok(self.gateway.api.fast_execute_script(dict(
            SCOPE,
            script_language=1,
            script_content=b64("mkdir -p /opt/sdk && echo done > /opt/sdk/marker"),
            account_id=1,
            target_server={"host_id_list": [12]},
        )))
        end = self.wait(self.gateway_status, data["job_instance_id"])
        self.assertEqual(end["job_instance"]["status"], 3, end)
        self.assertEqual(self.host_file("0:10.0.0.2", "/opt/sdk/marker"), "done\n")
        detail = self.ok(self.gateway.api.get_job_plan_detail(dict(SCOPE, job_plan_id=50)))
        self.assertEqual(detail["job_plan_id"], 50)
        job = self.ok(self.gateway.api.execute_job_plan(dict(
            SCOPE, job_plan_id=50, global_var_list=[{"id": 1, "value": "2.0.0"}])))["job_instance_id"]
        end = self.wait(self.gateway_status, job)
        step = end["step_instance_list"][0]["step_instance_id"]
        logs = self.ok(self.gateway.api.batch_get_job_instance_ip_log(dict(
            SCOPE, job_instance_id=job, step_instance_id=step, host_id_list=[11])))
        self.assertEqual(dict(SOPS_VAR.findall(logs["script_task_logs"][0]["log_content"])), {"released": "2.0.0"})
        values = self.ok(self.gateway.api.get_job_instance_global_var_value(dict(SCOPE, job_instance_id=job)))
        last = values["step_instance_var_list"][-1]["global_var_list"]
        self.assertEqual({v["name"]: v["value"] for v in last}["released_at"], "v2.0.0", values)

    def test_gateway_sdk_tells_gateway_errors_apart(self):
        wrong = BkJobClient(endpoint=self.base + "/api/bk-job/", stage="prod")
        wrong.update_bkapi_authorization(bk_app_code=APP_CODE, bk_app_secret="nope", bk_username=USER)
        with self.assertRaises(APIGatewayResponseError) as caught:
            wrong.api.get_job_plan_detail(dict(SCOPE, job_plan_id=50))
        self.assertEqual(caught.exception.error_code, "1640001")
        self.assertTrue(caught.exception.request_id)
        # JOB's own refusal passes through: no gateway error header, result false.
        answer = self.gateway.api.get_job_plan_detail(dict(SCOPE, job_plan_id=999))
        self.assertFalse(answer["result"])
        self.assertNotEqual(answer["code"], 0)

    # bk-sops' classic client, as plain requests -------------------------------------

    def sops_header_call(self, method, api, params):
        auth = json.dumps({"bk_app_code": APP_CODE, "bk_app_secret": APP_SECRET, "bk_username": USER})
        url = "%s/api/c/compapi/v2/jobv3/%s/" % (self.base, api)
        headers = {"X-Bkapi-Authorization": auth}
        if method == "GET":
            response = requests.get(url, params=params, headers=headers)
        else:
            response = requests.post(url, json=params, headers=headers)
        self.assertEqual(response.status_code, 200)
        return response.json()

    def sops_body_call(self, family, api, params):
        body = {"bk_app_code": APP_CODE, "bk_app_secret": APP_SECRET, "bk_username": USER}
        body.update(params)
        url = "%s/api/c/compapi/v2/%s/%s/" % (self.base, family, api)
        response = requests.post(url, data=json.dumps(body))  # no content type, as it sends it
        self.assertEqual(response.status_code, 200)
        return response.json()

    def test_sops_header_auth_with_python_booleans(self):
        data = self.ok(self.sops_header_call("POST", "fast_execute_script", dict(
            SCOPE, script_language=1, script_content=b64('echo "<SOPS_VAR>k:v</SOPS_VAR>"'),
            account_alias="root", target_server={"ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.1"}]})))
        job = data["job_instance_id"]

        def status(job_id):
            # requests renders True as "True", as bk-sops' GET calls send it.
            return self.sops_header_call("GET", "get_job_instance_status",
                                         dict(SCOPE, job_instance_id=job_id, return_ip_result=True))

        end = self.wait(status, job)
        self.assertEqual(end["job_instance"]["status"], 3, end)
        self.assertEqual(len(end["step_instance_list"][0]["step_ip_result_list"]), 1)
        log = self.ok(self.sops_header_call("GET", "get_job_instance_ip_log", dict(
            SCOPE, job_instance_id=job, step_instance_id=data["step_instance_id"],
            bk_cloud_id=0, ip="10.0.0.1")))
        self.assertEqual(SOPS_VAR.findall(log["log_content"]), [("k", "v")])

    def test_sops_body_auth_on_v2_and_jobv3(self):
        data = self.ok(self.sops_body_call("job", "fast_execute_script", {
            "bk_biz_id": 2, "script_type": 1, "account": "root",
            "script_content": b64("echo v2-body-auth"),
            "ip_list": [{"bk_cloud_id": 0, "ip": "10.0.0.2"}],
        }))
        job = data["job_instance_id"]

        def v2_status(job_id):
            answer = self.sops_body_call("job", "get_job_instance_status", {"bk_biz_id": 2, "job_instance_id": job_id})
            answer["data"]["finished"] = answer["data"]["is_finished"]
            return answer

        end = self.wait(v2_status, job)
        self.assertEqual(end["job_instance"]["status"], 3, end)
        logs = self.ok(self.sops_body_call("job", "get_job_instance_log", {"bk_biz_id": 2, "job_instance_id": job}))
        self.assertIn("v2-body-auth", logs[0]["step_results"][0]["ip_logs"][0]["log_content"])
        plans = self.sops_body_call("jobv3", "get_job_plan_list", dict(SCOPE))
        self.assertEqual(self.ok(plans)["total"], 2)
        self.assertEqual(plans["message"], "")
        refused = self.sops_body_call("jobv3", "get_job_plan_list", dict(SCOPE, bk_app_secret="nope"))
        self.assertFalse(refused["result"])
        self.assertIsInstance(refused["message"], str)


if __name__ == "__main__":
    unittest.main()
