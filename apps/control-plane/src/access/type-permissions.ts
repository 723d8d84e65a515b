import { Extensions } from '@nestjs/graphql';
import { PERMISSION_EXTENSION } from './require-permission.decorator.ts';

/** On an @ObjectType about the caller themselves (viewer, page info): any signed-in caller. */
export const TypeRequiresAuthentication = (): ClassDecorator => Extensions({ [PERMISSION_EXTENSION]: 'authenticated' }) as ClassDecorator;
