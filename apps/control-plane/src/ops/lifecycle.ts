import { Injectable } from '@nestjs/common';

/** Process state shared by the readiness probe and the shutdown sequence. */
@Injectable()
export class Lifecycle {
  shuttingDown = false;
}
