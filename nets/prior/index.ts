/** unCLIP prior: a small x0-predicting diffusion model over CLIP image embeddings, conditioned on text. */
export * from './model.js';
