/** The key proxy's version (package.json). */
export const KEY_PROXY_VERSION = '0.1.0';
