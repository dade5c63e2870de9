/**
 * Values copied from an example file and never replaced: `change-me…` secrets pass every length
 * check, so production refuses them by name. Development keeps accepting them (examples must run).
 */
const PLACEHOLDER = /change[-_ ]?me|replace[-_ ]?me|placeholder|your[-_ ]?(?:secret|password)|example[-_]?secret|^(.)\1*$/i;

/** Whether a secret, or a URL's password, is a known placeholder. */
export function isPlaceholder(value: string): boolean {
  return PLACEHOLDER.test(value);
}

/** The password of a `scheme://user:password@host` URL, decoded; undefined when it has none. */
export function urlPassword(url: string): string | undefined {
  try {
    const password = new URL(url).password;
    return password ? decodeURIComponent(password) : undefined;
  } catch {
    return undefined;
  }
}
