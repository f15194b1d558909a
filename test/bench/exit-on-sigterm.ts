/**
 * Preloaded (node --require) into a Node.js server without a SIGTERM handler (ws-node) when it runs
 * under --cpu-prof: V8 writes the profile on a normal exit, not when a signal kills the process.
 */
process.once('SIGTERM', () => process.exit(0));
