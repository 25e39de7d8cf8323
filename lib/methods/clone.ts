/** Copying a UNet (new variables, same weights): the start of every fine-tune (DiffusionCLIP, Imagic). */
import { UNet } from '../../nets/unet/index.js';

/** Clone a UNet (new variables, same weights). */
export function cloneUNet(u: UNet): UNet {
  return UNet.fromStateDict(u.toStateDict(), u.config);
}
