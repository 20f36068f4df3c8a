/** Tests use the same helper as the demo and the benches. */
export { freePort } from '../../src/base/free-port.ts';
