"""{{name}}: a function invoked with a JSON event, e.g. {"name": "Mundo"}."""

import os

GREETING = os.environ.get("GREETING", "Hola")


def lambda_handler(event, context):
    name = (event.get("name") if isinstance(event, dict) else None) or "World"
    print(f"greeting {name}")
    return {"message": f"{GREETING}, {name}!"}
