/** The version `twoway --version` prints; kept apart so that answering it loads nothing else. */
export const VERSION = '0.1.0';
