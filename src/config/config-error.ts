/**
 * A configuration that cannot be used: the message names the file, the key
 * and what was expected. Its own module, free of the schema, so the CLI can
 * recognise it without loading zod.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
