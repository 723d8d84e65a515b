export * from './vault-transit-fake.ts';
export * from './aws-kms-fake.ts';
