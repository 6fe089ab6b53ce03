// graphql-codegen: server/schema.graphql (printed from code) → console/src/gql (client preset).
// Run with `pnpm codegen` once the console has operations (the admin-console issue adds the
// @graphql-codegen packages; this registry lacks the versions the latest CLI needs).
const config = {
  schema: 'server/schema.graphql',
  documents: ['console/src/**/*.tsx', '!console/src/gql/**/*'],
  ignoreNoDocuments: true,
  generates: {
    'console/src/gql/': {
      preset: 'client',
      config: { useTypeImports: true, enumsAsTypes: true },
    },
  },
};

export default config;
