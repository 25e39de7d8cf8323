/**
 * The metrics the training evaluation uses. Their one home is lib/metrics (`diffguide/metrics`);
 * this module re-exports them for the code and tests that import them from here.
 */
export { meanCov, symmetricEigen, sqrtmPsd, frechetDistance, frechetDistanceOfGaussians, frechetDistanceOfFeatures, totalVariation } from '../metrics/frechet.js';
