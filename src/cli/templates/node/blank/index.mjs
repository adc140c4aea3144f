// {{name}}: a function invoked with a JSON event, e.g. {"name": "Mundo"}.

const GREETING = process.env.GREETING || 'Hola';

export const handler = async (event, context) => {
  const name = event?.name || 'World';
  console.log(`greeting ${name}`);
  return { message: `${GREETING}, ${name}!` };
};
