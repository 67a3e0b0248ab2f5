"""A server that answers like an API without JSON error bodies: the check's own test.

scripts/api-fuzz.sh runs schemathesis with Skiff's hooks against it first and requires the run
to fail on `error_answers_are_json_error_bodies`, so a check that cannot fail is noticed.
Serves its one-operation OpenAPI document at /openapi.json; every other path answers
404 text/plain. Listens on 127.0.0.1 at the port given as the only argument.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "plain errors", "version": "1"},
    "paths": {
        "/things/{name}": {
            "get": {
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": {"description": "a thing"}},
            }
        }
    },
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/openapi.json":
            body, status, kind = json.dumps(SPEC).encode(), 200, "application/json"
        else:
            body, status, kind = b"no such thing\n", 404, "text/plain"
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
