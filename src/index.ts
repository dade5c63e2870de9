export { createApp, type App, type AppOptions } from './app.js';
export { loadConfig, ConfigError, type Config } from './config.js';
export * from 'switchboard-client/protocol';
