"""{{name}}: an HTTP function (API Gateway HTTP API, payload format 2.0).

Invoke it directly with {"name": "Mundo"}, or through HTTP with a JSON body {"name": "Mundo"}
or a query string ?name=Mundo.
"""

import base64
import json
import os

GREETING = os.environ.get("GREETING", "Hola")


def lambda_handler(event, context):
    name = name_from(event)
    print(f"greeting {name}")
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"message": f"{GREETING}, {name}!"}),
    }


def name_from(event):
    """event.name (direct invoke), else the JSON body's name, else ?name=, else World."""
    if not isinstance(event, dict):
        return "World"
    if event.get("name"):
        return str(event["name"])
    body = event.get("body")
    if body:
        try:
            if event.get("isBase64Encoded"):
                body = base64.b64decode(body).decode("utf-8")
            data = json.loads(body)
        except ValueError:  # not JSON (or not base64): no name there
            data = None
        if isinstance(data, dict) and data.get("name"):
            return str(data["name"])
    query = event.get("queryStringParameters") or {}
    return query.get("name") or "World"
