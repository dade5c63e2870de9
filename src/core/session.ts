import type { Principal } from '../ports/authenticator.js';

/** A client connection as the core sees it: the id the transport gave it, and who it is. */
export interface Session {
  readonly id: string;
  readonly principal: Principal;
}
