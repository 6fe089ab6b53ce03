/** The audit log: written by each module in the same transaction as its action; read here. */
import { builder } from '../../builder.js';
import { bigintCursor, checkCursors } from '../../cursors.js';

builder.prismaObject('AuditLog', {
  fields: (t) => ({
    id: t.id({ resolve: (entry) => entry.id.toString() }),
    at: t.expose('at', { type: 'DateTime' }),
    action: t.exposeString('action'),
    actorId: t.exposeID('actorId', { nullable: true }),
    clinicId: t.exposeID('clinicId', { nullable: true }),
    targetType: t.exposeString('targetType', { nullable: true }),
    targetId: t.exposeString('targetId', { nullable: true }),
    data: t.expose('data', { type: 'JSON' }),
  }),
});

builder.queryField('auditLog', (t) =>
  t.prismaConnection({
    type: 'AuditLog',
    cursor: 'id',
    description: 'Newest first. Super-admins see everything; clinic admins see their clinic only.',
    authScopes: { superAdmin: true, clinicAdminOfAny: true },
    args: {
      action: t.arg.string({
        description: 'Exact action, e.g. auth.sign_in, or a prefix ending in ".", e.g. auth.',
      }),
    },
    // Row-level security scopes the rows: everything for super-admins, the viewer's clinic otherwise.
    resolve: (query, _root, args, context) => {
      checkCursors(args, bigintCursor);
      const action = args.action
        ? args.action.endsWith('.')
          ? { action: { startsWith: args.action } }
          : { action: args.action }
        : {};
      return context.scoped((tx) =>
        tx.auditLog.findMany({ ...query, where: action, orderBy: { id: 'desc' } }),
      );
    },
  }),
);
