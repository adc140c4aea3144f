// {{name}}: an HTTP function (API Gateway HTTP API, payload format 2.0).
//
// Invoke it directly with {"name": "Mundo"}, or through HTTP with a JSON body {"name": "Mundo"}
// or a query string ?name=Mundo.

const GREETING = process.env.GREETING || 'Hola';

export const handler = async (event, context) => {
  const name = nameFrom(event);
  console.log(`greeting ${name}`);
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ message: `${GREETING}, ${name}!` }),
  };
};

// event.name (direct invoke), else the JSON body's name, else ?name=, else World.
function nameFrom(event) {
  if (event?.name) return String(event.name);
  if (event?.body) {
    try {
      const text = event.isBase64Encoded
        ? Buffer.from(event.body, 'base64').toString('utf8')
        : event.body;
      const data = JSON.parse(text);
      if (data?.name) return String(data.name);
    } catch {
      // not JSON: no name there
    }
  }
  return event?.queryStringParameters?.name || 'World';
}
