export { findBinary as requireBinary, SYSTEM_BINARIES as PACKAGES } from '../../scripts/lib/binaries.js';
