import { EventEmitter } from 'node:events';
import { Injectable } from '@nestjs/common';
import type { JobStatus } from '@arca/db';
import type { Progress } from '@arca/contracts';

/** A job's state changed on this replica (queued here, or completed / requeued / expired here). */
export interface JobChange {
  orgId: string;
  jobId: string;
  agentId: string;
  status: JobStatus;
  /** the job's kind, when the emitter knows it (listeners may then skip reading the job) */
  kind?: string;
}

export interface JobProgressEvent {
  orgId: string;
  jobId: string;
  progress: Progress;
}

/**
 * In-process job notifications for follow-ups, store status and the GraphQL subscription. Each
 * completion is emitted once, on the replica that recorded it; progress also reaches other
 * replicas as NOTIFY arca_job_progress, which JobWakeups re-emits here. Listeners must not throw
 * (an exception is caught and dropped so one listener cannot break the queue).
 */
@Injectable()
export class JobEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  onQueued(fn: (change: JobChange) => void): () => void {
    return this.on('queued', fn);
  }

  onCompleted(fn: (change: JobChange) => void): () => void {
    return this.on('completed', fn);
  }

  onProgress(fn: (event: JobProgressEvent) => void): () => void {
    return this.on('progress', fn);
  }

  emitQueued(change: JobChange): void {
    this.emitter.emit('queued', change);
  }

  emitCompleted(change: JobChange): void {
    this.emitter.emit('completed', change);
  }

  emitProgress(event: JobProgressEvent): void {
    this.emitter.emit('progress', event);
  }

  private on<T>(name: string, fn: (value: T) => void): () => void {
    const safe = (value: T): void => {
      try {
        fn(value);
      } catch {
        // a listener's failure is its own; the queue goes on
      }
    };
    this.emitter.on(name, safe);
    return () => this.emitter.off(name, safe);
  }
}
