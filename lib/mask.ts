// Masking secrets in a run's output: the forms a value takes when re-encoded
// (mask/forms.ts), the automaton that finds them all in one pass
// (mask/automaton.ts), the streaming masker with ::add-mask:: (mask/masker.ts)
// and its Transform (mask/stream.ts). This index keeps one import path.
export { base64Forms, maskForms } from './mask/forms.ts';
export { DEFAULT_MIN_LENGTH, MASK, MAX_DIRECTIVE_BYTES, MAX_PATTERN_BYTES, Masker, type MaskerOptions, type Secret } from './mask/masker.ts';
export { createMaskStream } from './mask/stream.ts';
