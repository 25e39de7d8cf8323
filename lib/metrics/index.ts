/**
 * diffguide/metrics: image-synthesis metrics, typed and usable on their own.
 * Images are NHWC float32 in [-1, 1]; feature sets are [N, D] (a tf.Tensor2D or number[][]).
 *
 *   ssim, psnr                      per image, as scikit-image computes them (data range 2)
 *   frechetDistance                 pytorch-fid's formula on two feature sets (or two Gaussians)
 *   kid                             unbiased MMD², cubic polynomial kernel, random subsets (torch-fidelity / clean-fid)
 *   lpips                           the LPIPS v0.1 formula over a trunk you supply; loadLpipsHeads reads the
 *                                   released heads; judgeLpips is the "judge-LPIPS" stand-in (not LPIPS)
 *   clipScore, directionalClipSimilarity, categoryAgreement, frechetDistanceOf, kidOf,
 *   meanPairwiseDistance (diversity), topKRetrieval
 *   extractors                      judge and CLIP built in; loadExtractor({ kind, path }) loads them from any
 *                                   checkpoint lib/io reads; registerExtractor adds others (e.g. an Inception)
 *
 * Metrics that take an extractor return a MetricReport whose `extractor` names it.
 */
export { ssim, psnr, gaussianTaps, type SsimOptions } from './image.js';
export {
  frechetDistance,
  frechetDistanceOfGaussians,
  frechetDistanceOfFeatures,
  meanCov,
  symmetricEigen,
  sqrtmPsd,
  totalVariation,
} from './frechet.js';
export { kid, mmd2Unbiased, mmd2OfSubsets, sampleWithoutReplacement, type KidOptions, type KidResult } from './kid.js';
export {
  lpips,
  lpipsOfFeatures,
  pairwiseLpips,
  loadLpipsHeads,
  lpipsNet,
  judgeLpips,
  normalizeChannels,
  type FeatureTrunk,
  type LpipsHeads,
  type LpipsNet,
} from './lpips.js';
export { argmaxAccuracy, retrievalTopK, cosineMatrix, matchRate, topKRetrieval, type Relevance } from './retrieval.js';
export {
  clipScore,
  directionalClipSimilarity,
  meanPairwiseDistance,
  categoryAgreement,
  frechetDistanceOf,
  kidOf,
} from './embedding.js';
export {
  judgeExtractor,
  clipExtractor,
  loadJudgeExtractor,
  loadClipExtractor,
  loadExtractor,
  registerExtractor,
  extractorKinds,
  parseExtractorSpec,
  extract,
  classify,
  type ImageFeatureExtractor,
  type ImageTextExtractor,
  type CategoryExtractor,
  type ExtractorConfig,
  type ExtractorLoader,
  type WrapOptions,
} from './extractors.js';
export { hostRows, asTensor2D, type FeatureSet, type HostRows } from './features-host.js';
export { report, type MetricReport } from './report.js';
