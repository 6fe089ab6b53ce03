import { builder } from '../../builder.js';

const DeleteMyAccountSuccess = builder.objectRef<{ deleted: true }>('DeleteMyAccountSuccess').implement({
  description: 'The signed-in user was anonymised and signed out everywhere.',
  fields: (t) => ({ deleted: t.exposeBoolean('deleted', { description: 'Always true.' }) }),
});

builder.queryField('exportMyData', (t) =>
  t.field({
    type: 'JSON',
    description: 'Everything Onramp holds about the signed-in user (GDPR art. 15 and 20); never secrets.',
    authScopes: { authenticated: true },
    resolve: (_root, _args, context) =>
      context.deps.account.exportData(context.viewer?.userId as string, context.scoped),
  }),
);

builder.mutationField('deleteMyAccount', (t) =>
  t.field({
    type: DeleteMyAccountSuccess,
    description:
      'Anonymises the signed-in user and ends every session (GDPR art. 17). See the README for what is kept.',
    authScopes: { authenticated: true },
    errors: {},
    resolve: async (_root, _args, context) => {
      await context.deps.account.deleteAccount(context.viewer?.userId as string);
      return { deleted: true as const };
    },
  }),
);
