// What the usage reads of Node's globals; a user's project has them from @types/node, which this
// package does not depend on.
declare const process: { env: Record<string, string | undefined> };
