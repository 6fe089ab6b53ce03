// graphql-codegen: server/schema.graphql (printed from code) → console/src/gql (client preset).
// The output is generated, never edited and not committed: `pnpm install` (postinstall → generate)
// and `pnpm build` / `pnpm dev` write it, so it exists on a fresh clone before typecheck or build.
// After editing an operation while `pnpm dev` runs, run `pnpm codegen`.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: 'server/schema.graphql',
  documents: ['console/src/**/*.{ts,tsx}', '!console/src/gql/**/*'],
  // A console without a single operation is a mistake, not a state to tolerate.
  ignoreNoDocuments: false,
  generates: {
    'console/src/gql/': {
      preset: 'client',
      // Components read the fields their own operation selects; masking would add ceremony
      // (useFragment) without protecting anything in a console this size.
      presetConfig: { fragmentMasking: false },
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        scalars: { DateTime: 'string', JSON: 'unknown' },
      },
    },
  },
};

export default config;
