export * from './organizations-table.ts';
export * from './users-table.ts';
export * from './roles-table.ts';
export * from './memberships-table.ts';
export * from './api-tokens-table.ts';
export * from './audit-events-table.ts';
