/** The control plane, for the CLI and the tests. */
export { createControlPlane, createLogger, migrateDatabase, openDatabase, type ControlPlane } from './server.ts';
export { loadControlPlaneConfig, type ControlPlaneConfig } from './config/control-plane-config.ts';
export { ControlPlaneError, ControlPlaneErrorCode } from './errors/control-plane-error.ts';
export { OrganizationService, type BootstrapLinkResult, type BootstrapResult } from './organizations/organization.service.ts';
