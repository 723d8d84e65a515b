export * from './organizations-table.ts';
export * from './users-table.ts';
export * from './roles-table.ts';
export * from './memberships-table.ts';
export * from './api-tokens-table.ts';
export * from './audit-events-table.ts';
export * from './sessions-table.ts';
export * from './invitations-table.ts';
