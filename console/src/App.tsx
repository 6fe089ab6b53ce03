export function App() {
  return (
    <main
      style={{ fontFamily: 'system-ui, sans-serif', maxWidth: 720, margin: '4rem auto', padding: '0 1rem' }}
    >
      <h1>Onramp</h1>
      <p>
        The admin console arrives with its own issue. Meanwhile, explore the API in{' '}
        <a href="/graphql">GraphiQL</a>.
      </p>
    </main>
  );
}
