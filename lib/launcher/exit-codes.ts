// The launcher daemon's exit codes (`launcher run --help`, docs/launcher.md):
// a supervisor tells from them whether restarting can help.
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** Bad configuration or usage: fix the environment first. */
export const EXIT_CONFIG = 2;
/** The server refused this pool's certificate: a new token (and key) is needed. */
export const EXIT_REFUSED = 3;
/** The pool was cycled: start a fresh launcher. */
export const EXIT_CYCLED = 4;
/** The Docker Engine cannot be reached. */
export const EXIT_DOCKER = 5;
/** SIGQUIT: exit at once; the next start resumes the run (128 + 3). */
export const EXIT_QUIT = 131;
