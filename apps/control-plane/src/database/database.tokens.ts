/** Injection token of the @arca/db Database (a plain class from a lib, so not injectable by type). */
export const DATABASE = Symbol.for('arca.control-plane.database');
/** Injection token of the validated ControlPlaneConfig. */
export const CONFIG = Symbol.for('arca.control-plane.config');
