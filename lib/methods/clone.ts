export { cloneUNet } from '../models/diffuser.js';
